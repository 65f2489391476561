"""The GPU worker's work on a CUDA card: training and generation speed, and an exact resume.

What the ``gpu`` Celery worker runs, minus Django: the ML core (``trainer/ml``,
``generations/sampling.py``) imports nothing from the web side, so this runs on a bare GPU machine
that has torch and transformers (and no database). It does, on the card that ``cuda`` names:

1. Model: a GPT-2 with GPT-2 small's shape (124M parameters), randomly initialised, with GPT-2's
   real tokenizer and the chat format's special tokens, in float32 master weights as the trainer
   loads it. Data: the first ``--conversations`` conversations of chitchat-dataset (real chats,
   MIT), six friends, cut into full windows as ``benchmarks/train.py`` does.
2. Training throughput: our loop (``trainer.ml.loop.train``, bf16 autocast, as configured by
   default, which on a big card means full logits, see ``use_chunked_loss``; then with
   ``chunked_loss=False``) against Hugging Face's ``Trainer`` (``bf16=True``), same model,
   windows, batch, optimizer family, schedule and clipping. Median step time after warm-up steps;
   peak GPU memory (``torch.cuda.max_memory_allocated``) of each.
3. Resume: one run of ``--resume-steps`` steps straight through, and one stopped (as a cancel or a
   killed worker would) right after its checkpoint at half way, then resumed in a fresh model and
   optimizer from that checkpoint. Same losses step for step and the same weights at the end are
   what "exact resume" means on the CPU; on a GPU some kernels (the embedding's backward) add in
   a different order each run, so this prints how far apart they end.
4. Generation from the trained checkpoint, loaded as the worker loads it (``Generator.load``,
   bfloat16 on the card): ``--snippets`` requests through our batched loop against
   ``model.generate`` one request at a time (``--baseline-samples`` of them, extrapolated);
   regenerating a few must give the same text (same batch shape, same card).

Inputs come from files so the machine needs no extra packages: here, write them once with

    .venv/bin/python benchmarks/gpu.py --export-inputs .gpu     # GPT-2's tokenizer + chat data

then on the GPU machine (``.gpu`` carried along):

    python3 benchmarks/gpu.py --inputs .gpu [--json OUT.json]

``--device cpu --small`` runs the same steps here with a tiny model, to check the script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEAKERS = {s: s.title() for s in ("ana", "ben", "cleo", "dev", "eli", "fay")}


def export_inputs(folder: Path, conversations: int) -> None:
    """Write GPT-2's tokenizer and the chat data that the GPU machine cannot install."""
    from benchmarks.train import chitchat_messages
    from trainer.ml.base_models import gpt2_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    gpt2_tokenizer().save_pretrained(folder / "tokenizer")
    messages, _ = chitchat_messages(conversations)
    rows = [[m.conversation_id, m.speaker_slug, m.text, m.sent_at.isoformat()] for m in messages]
    (folder / "messages.json").write_text(json.dumps(rows, separators=(",", ":")))
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    print(f"wrote {len(rows):,} messages and the tokenizer to {folder} ({size / 2**20:.1f} MiB)")


def load_messages(path: Path) -> list:
    from trainer.ml.data import CorpusMessage

    return [
        CorpusMessage(conv, speaker, text, datetime.fromisoformat(when))
        for conv, speaker, text, when in json.loads(path.read_text())
    ]


def base_model(folder: Path, tokenizer_dir: Path, small: bool, positions: int) -> Path:
    """A randomly initialised GPT-2 (GPT-2 small's shape, or a tiny one) saved as a base model."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    shape = (
        {"n_layer": 2, "n_embd": 64, "n_head": 2}
        if small
        else {"n_layer": 12, "n_embd": 768, "n_head": 12}
    )
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **shape,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class Setup:
    """The base model and the packed windows, loaded afresh for each run."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        from trainer.ml.base_models import load_for_training
        from trainer.ml.chat_format import ChatFormat
        from trainer.ml.data import DataConfig, build_dataset

        self.args = args
        self.fmt = ChatFormat(speakers=SPEAKERS)
        self.base = base_model(
            work / "base", args.inputs / "tokenizer", args.small, args.window_len
        )
        self.cache = work / "cache"
        _, tok = load_for_training(self.base, self.fmt, self.cache)
        messages = load_messages(args.inputs / "messages.json")
        ds = build_dataset(
            messages, tok, self.fmt, DataConfig(window_len=args.window_len, val_fraction=0)
        )
        flat = [t for w in ds.train for t in w]
        n = args.window_len
        ds.train = [flat[i : i + n] for i in range(0, len(flat) - n + 1, n)]
        self.dataset = ds
        print(f"{len(messages):,} messages -> {len(ds.train):,} full windows of {n} tokens")

    def model(self):
        from trainer.ml.base_models import load_for_training

        return load_for_training(self.base, self.fmt, self.cache)


def config(args: argparse.Namespace, steps: int, **overrides):
    from trainer.ml.loop import TrainConfig

    values = {
        "max_steps": steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup_steps": 2,
        "schedule": "cosine",
        "weight_decay": 0.0,
        "window_len": args.window_len,
        "eval_every": 0,
        "checkpoint_every_s": 1e9,
        "progress_every_s": 0,
        "device": args.device,
    }
    values.update(overrides)
    return TrainConfig(**values)


def memory_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def run_ours(setup: Setup, chunked: bool) -> dict:
    import torch

    from trainer.ml.loop import train, use_chunked_loss

    args = setup.args
    model, tok = setup.model()
    cfg = config(args, args.warmup + args.steps, chunked_loss=chunked)
    used_chunks = use_chunked_loss(cfg, model, torch.device(args.device))
    memory_reset()
    stamps: dict[int, float] = {}

    def on_progress(p) -> None:  # noqa: ANN001
        if p.event == "step":
            stamps[p.step] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        train(
            cfg,
            model,
            tok,
            setup.dataset,
            Path(out),
            on_progress=on_progress,
        )
    steps = range(args.warmup, args.warmup + args.steps)
    return {
        "step_seconds": [stamps[i + 1] - stamps[i] for i in steps],
        "peak_mb": peak_memory_mb(),
        "chunked": used_chunks,
    }


def run_hf(setup: Setup) -> dict:
    from benchmarks.train import hf_train

    args = setup.args
    model, _ = setup.model()
    memory_reset()
    stamps = hf_train(
        model,
        setup.dataset,
        steps=args.warmup + args.steps,
        batch_size=args.batch_size,
        grad_accum=1,
        lr=args.lr,
        device=args.device,
    )
    steps = range(args.warmup, args.warmup + args.steps)
    return {"step_seconds": [stamps[i + 1] - stamps[i] for i in steps], "peak_mb": peak_memory_mb()}


def resume_check(setup: Setup, work: Path) -> dict:
    """Straight through vs stopped at half way and resumed from the checkpoint."""
    from trainer.ml.loop import train

    args = setup.args
    total, half = args.resume_steps, args.resume_steps // 2
    model, tok = setup.model()
    straight = train(config(args, total), model, tok, setup.dataset, work / "straight")
    weights = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}

    model, tok = setup.model()
    step = {"n": 0}

    def on_progress(p) -> None:  # noqa: ANN001
        if p.event == "step":
            step["n"] = p.step

    stopped = train(
        config(args, total, checkpoint_every_steps=half),
        model,
        tok,
        setup.dataset,
        work / "resumed",
        on_progress=on_progress,
        should_stop=lambda: step["n"] >= half,
    )
    model, tok = setup.model()  # a fresh process would start from the base model like this
    resumed = train(config(args, total), model, tok, setup.dataset, work / "resumed")
    losses = stopped.train_losses[:half] + resumed.train_losses[half:]
    diffs = [abs(a - b) for a, b in zip(straight.train_losses, losses, strict=True)]
    weight_diff = max(
        float((v.detach().float().cpu() - weights[k]).abs().max())
        for k, v in model.state_dict().items()
    )
    return {
        "stopped_at": stopped.step,
        "stopped_status": stopped.status,
        "resumed_from": resumed.resumed_from_step,
        "final_step": resumed.step,
        "max_loss_diff": max(diffs),
        "loss_diff_at_resume": diffs[half],
        "max_weight_diff": weight_diff,
        "straight_losses": [round(x, 4) for x in straight.train_losses],
        "resumed_losses": [round(x, 4) for x in losses],
        "checkpoint": str(straight.checkpoint),
    }


def generation(args: argparse.Namespace, checkpoint: Path, messages: list) -> dict:
    import random

    import torch

    from benchmarks.generate import generate_one
    from generations.sampling import Generator, SamplingParams

    gen = Generator.load(checkpoint, device=args.device)
    model = gen.model
    dtype = str(next(model.parameters()).dtype)
    params = SamplingParams(
        temperature=0.9, top_p=0.95, top_k=50, max_new_tokens=args.max_new_tokens, seed=1234
    )
    rng = random.Random(0)
    slugs = sorted(SPEAKERS)
    requests = []
    for i in range(args.snippets):
        opening = " ".join(rng.choice(messages).text.split()[: rng.randint(1, 5)]) if i % 2 else ""
        requests.append((slugs[i % len(slugs)], opening))
    on_gpu = args.device.startswith("cuda")

    def sync() -> None:
        if on_gpu:
            torch.cuda.synchronize()

    gen.generate_messages(requests[:8], params, batch_size=8)  # warm-up (kernels, allocator)
    sync()
    start = time.perf_counter()
    msgs = gen.generate_messages(requests, params, batch_size=args.gen_batch_size)
    sync()
    ours = time.perf_counter() - start

    baseline_tokens = []
    sync()
    start = time.perf_counter()
    for i in range(args.baseline_samples):
        baseline_tokens.append(generate_one(gen, requests[i], params, seed=i))
    sync()
    baseline = time.perf_counter() - start
    ours_tokens = sum(m.n_tokens for m in msgs)
    per_snippet = (baseline / len(baseline_tokens)) / (ours / len(msgs))
    per_token = (baseline / sum(baseline_tokens)) / (ours / ours_tokens)
    replay = [gen.regenerate(m).text == m.text for m in msgs[: args.replay_check]]
    return {
        "dtype": dtype,
        "snippets": len(msgs),
        "ours_s": ours,
        "ours_tokens": ours_tokens,
        "ours_snippets_per_s": len(msgs) / ours,
        "stop_reasons": {r: sum(m.stop_reason == r for m in msgs) for r in ("eom", "length")},
        "baseline_samples": len(baseline_tokens),
        "baseline_s": baseline,
        "baseline_tokens": sum(baseline_tokens),
        "speedup_per_snippet": per_snippet,
        "speedup_per_token": per_token,
        "replay_identical": f"{sum(replay)}/{len(replay)}",
        "sample": [m.text for m in msgs[:3]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--export-inputs", type=Path, help="write the inputs here and stop")
    ap.add_argument("--inputs", type=Path, default=ROOT / ".gpu")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="a tiny model (to check the script)")
    ap.add_argument("--conversations", type=int, default=1500)
    ap.add_argument("--window-len", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=40, help="timed optimizer steps")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each loop, alternating")
    ap.add_argument("--resume-steps", type=int, default=20)
    ap.add_argument("--snippets", type=int, default=1024)
    ap.add_argument("--gen-batch-size", type=int, default=128)
    ap.add_argument("--max-new-tokens", type=int, default=60)
    ap.add_argument("--baseline-samples", type=int, default=24)
    ap.add_argument("--replay-check", type=int, default=8)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.export_inputs:
        export_inputs(args.export_inputs, args.conversations)
        return

    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    report: dict = {"torch": torch.__version__, "transformers": transformers.__version__}
    if args.device.startswith("cuda"):
        report["card"] = torch.cuda.get_device_name(args.device)
        report["bf16"] = torch.cuda.is_bf16_supported()
    print(json.dumps(report), flush=True)
    with tempfile.TemporaryDirectory(prefix="joe-gpu-") as tmp:
        work = Path(tmp)
        setup = Setup(args, work)
        per_step = args.batch_size * args.window_len
        runs: dict[str, list[dict]] = {"ours": [], "ours-full": [], "hf": []}
        for _ in range(args.repeats):  # alternating, so drift hits all three alike
            runs["ours"].append(run_ours(setup, chunked=True))
            runs["ours-full"].append(run_ours(setup, chunked=False))
            runs["hf"].append(run_hf(setup))
        training = {}
        for name, results in runs.items():
            steps = [s for r in results for s in r["step_seconds"]]
            training[name] = {
                "tokens_per_s": per_step / statistics.median(steps),
                "peak_mb": max((r["peak_mb"] or 0) for r in results) or None,
            }
            if "chunked" in results[0]:
                training[name]["chunked_loss"] = results[0]["chunked"]
        hf = training["hf"]
        for name in ("ours", "ours-full"):
            training[name]["vs_hf_tokens_per_s"] = (
                training[name]["tokens_per_s"] / hf["tokens_per_s"]
            )
            if hf["peak_mb"]:
                training[name]["vs_hf_memory"] = training[name]["peak_mb"] / hf["peak_mb"]
        report["training"] = training
        print(json.dumps({"training": training}, indent=1), flush=True)

        report["resume"] = resume_check(setup, work)
        print(json.dumps({"resume": report["resume"]}, indent=1), flush=True)
        report["generation"] = generation(
            args, Path(report["resume"]["checkpoint"]), load_messages(args.inputs / "messages.json")
        )
        print(json.dumps({"generation": report["generation"]}, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
