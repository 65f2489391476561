"""Training throughput and peak memory: our loop vs a plain Hugging Face ``Trainer``.

Both train the same model on the same packed windows (real two-person chats from the
chitchat-dataset package, in our chat format) with the same batch, optimizer family, lr schedule
and gradient clipping, on CPU. Each run happens in its own child process so that peak RSS
(``ru_maxrss``) belongs to one loop only; runs alternate (ours, HF, ours, HF ...) so that load
from other processes on a shared machine hits them alike, and the median is reported. Our loop
runs twice: as configured by default (chunked output layer + loss, ``trainer/ml/lm_loss.py``) and
with ``chunked_loss=False`` (full logits, the same computation as the Trainer).

Throughput counts only timed steps (after ``--warmup`` untimed steps), from step-end to
step-end, excluding model loading, evaluation and checkpoint saving; tokens/s is per-step tokens
over the median step time (the mean is printed too).

    .venv/bin/python benchmarks/train.py                        # tiny GPT-2 (random init)
    .venv/bin/python benchmarks/train.py --model smollm2-135m   # the default base model
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ["ours", "ours-full", "hf"]
LABELS = {
    "ours": "our loop (chunked loss, default)",
    "ours-full": "our loop (full logits)",
    "hf": "HF Trainer",
}
sys.path.insert(0, str(ROOT))


def chitchat_messages(conversations: int):
    """The first N conversations of chitchat-dataset as CorpusMessages with six friend slugs."""
    import importlib.util

    from trainer.ml.data import CorpusMessage

    spec = importlib.util.find_spec("chitchat_dataset")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset.json"
    data = json.loads(path.read_text())
    slugs = ["ana", "ben", "cleo", "dev", "eli", "fay"]
    out = []
    for n, (conv_id, conv) in enumerate(sorted(data.items())[:conversations]):
        senders: dict[str, str] = {}
        for turn in conv["messages"]:
            for m in turn:
                slug = senders.setdefault(m["sender"], slugs[(n + len(senders)) % len(slugs)])
                when = datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00"))
                out.append(CorpusMessage(conv_id, slug, m["text"], when))
    return out, {s: s.title() for s in slugs}


def prepare(args: argparse.Namespace):
    import torch

    from trainer.ml.base_models import build_tiny_gpt2, load_for_training
    from trainer.ml.chat_format import ChatFormat
    from trainer.ml.data import DataConfig, build_dataset

    torch.set_num_threads(args.threads)
    cache = Path(args.cache_dir)
    if args.model == "tiny":
        base = cache / "bench-tiny-gpt2"
        if not base.is_dir():
            build_tiny_gpt2(base, n_layer=2, n_embd=64, n_head=2, n_positions=args.window_len)
    else:
        base = args.model
    messages, speakers = chitchat_messages(args.conversations)
    fmt = ChatFormat(speakers=speakers)
    model, tok = load_for_training(base, fmt, cache)
    ds = build_dataset(messages, tok, fmt, DataConfig(window_len=args.window_len, val_fraction=0))
    # Re-cut into exactly full windows (benchmark only): every step then has exactly
    # batch x window_len tokens in both loops, with no padding to count or not count.
    flat = [t for w in ds.train for t in w]
    n = args.window_len
    ds.train = [flat[i : i + n] for i in range(0, len(flat) - n + 1, n)]
    needed = (args.warmup + args.steps) * args.batch_size * args.grad_accum
    if len(ds.train) < needed:
        raise SystemExit(f"only {len(ds.train)} full windows, need {needed}: more --conversations")
    return model, tok, ds


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: on Linux that also counts the
    parent's pages from before exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(args: argparse.Namespace, chunked: bool) -> dict:
    from trainer.ml.loop import Progress, TrainConfig, train

    model, tok, ds = prepare(args)
    loaded_rss = rss_mb()
    stamps: dict[int, float] = {}

    def on_progress(p: Progress) -> None:
        if p.event == "step":
            stamps[p.step] = time.perf_counter()

    config = TrainConfig(
        max_steps=args.warmup + args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        warmup_steps=2,
        schedule="cosine",
        weight_decay=0.0,
        window_len=args.window_len,
        eval_every=0,
        checkpoint_every_s=1e9,
        progress_every_s=0,
        device="cpu",
        chunked_loss=chunked,
    )
    with tempfile.TemporaryDirectory() as out:
        train(config, model, tok, ds, Path(out), on_progress=on_progress)
    first, last = args.warmup, args.warmup + args.steps
    return {
        "step_seconds": [stamps[i + 1] - stamps[i] for i in range(first, last)],
        "steps": last - first,
        "loaded_rss_mb": loaded_rss,
        "peak_rss_mb": peak_rss_mb(),
    }


def hf_train(
    model,  # noqa: ANN001
    dataset,  # noqa: ANN001
    *,
    steps: int,
    batch_size: int,
    grad_accum: int,
    lr: float,
    device: str = "cpu",
) -> dict[int, float]:
    """Train ``model`` on ``dataset``'s windows with Hugging Face's ``Trainer``, set up as our
    loop is (schedule, clipping, no weight decay; bf16 on a GPU); the time each step ended."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from trainer.ml.data import collate

    stamps: dict[int, float] = {}
    on_gpu = device.startswith("cuda")

    class Stamp(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):  # noqa: ANN001, ANN003
            if on_gpu:
                torch.cuda.synchronize()
            stamps[state.global_step] = time.perf_counter()

    class Windows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(dataset.train)

        def __getitem__(self, i: int) -> list[int]:
            return dataset.train[i]

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=grad_accum,
            learning_rate=lr,
            warmup_steps=2,
            lr_scheduler_type="cosine",
            weight_decay=0.0,
            max_grad_norm=1.0,
            bf16=on_gpu,
            use_cpu=not on_gpu,
            save_strategy="no",
            eval_strategy="no",
            logging_steps=10**9,
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            remove_unused_columns=False,
            seed=0,
        )
        Trainer(
            model=model,
            args=targs,
            train_dataset=Windows(),
            data_collator=lambda windows: collate(windows, dataset.pad_id),
            callbacks=[Stamp()],
        ).train()
    return stamps


def run_hf(args: argparse.Namespace) -> dict:
    model, _tok, ds = prepare(args)
    loaded_rss = rss_mb()
    stamps = hf_train(
        model,
        ds,
        steps=args.warmup + args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
    )
    first, last = args.warmup, args.warmup + args.steps
    return {
        "step_seconds": [stamps[i + 1] - stamps[i] for i in range(first, last)],
        "steps": last - first,
        "loaded_rss_mb": loaded_rss,
        "peak_rss_mb": peak_rss_mb(),
    }


def child(args: argparse.Namespace) -> None:
    runs = {
        "ours": lambda: run_ours(args, chunked=True),
        "ours-full": lambda: run_ours(args, chunked=False),
        "hf": lambda: run_hf(args),
    }
    result = runs[args.child]()
    per_step = args.batch_size * args.grad_accum * args.window_len
    # The median step rather than the total: a burst of load from another process on a shared
    # machine then moves the figure much less.
    result["tokens_per_s"] = per_step / statistics.median(result["step_seconds"])
    result["mean_tokens_per_s"] = (
        per_step * len(result["step_seconds"]) / sum(result["step_seconds"])
    )
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help='"tiny", "smollm2-135m" or a folder')
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--window-len", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each loop, alternating")
    parser.add_argument("--conversations", type=int, default=400)
    parser.add_argument("--cache-dir", default=str(ROOT / "data" / "model-cache"))
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    passthrough = sys.argv[1:]
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for repeat in range(args.repeats):
        # Rotate the order each round so slow drifts in machine load favour no one.
        for which in VARIANTS[repeat % 3 :] + VARIANTS[: repeat % 3]:
            proc = subprocess.run(
                [sys.executable, __file__, *passthrough, "--child", which],
                capture_output=True,
                text=True,
                env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
            )
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
                raise SystemExit(f"{which} run failed")
            r = json.loads(line.removeprefix("RESULT "))
            results[which].append(r)
            print(
                f"{which:9s} {r['tokens_per_s']:9.1f} tok/s (mean {r['mean_tokens_per_s']:7.1f})"
                f"  peak RSS {r['peak_rss_mb']:7.0f} MiB"
                f"  (after load {r['loaded_rss_mb']:.0f} MiB)",
                flush=True,
            )

    def median(which: str, key: str) -> float:
        return statistics.median(r[key] for r in results[which])

    print(
        f"\nmodel={args.model} batch={args.batch_size}x{args.grad_accum} window={args.window_len}"
        f" threads={args.threads} steps={args.steps} (+{args.warmup} warmup)"
        f" repeats={args.repeats} load_avg_1min={os.getloadavg()[0]:.2f}"
    )
    hf_tps, hf_mem = median("hf", "tokens_per_s"), median("hf", "peak_rss_mb")
    for which in VARIANTS:
        tps, mem = median(which, "tokens_per_s"), median(which, "peak_rss_mb")
        print(
            f"{LABELS[which]:32s} {tps:9.1f} tok/s ({tps / hf_tps:5.3f}x HF)"
            f"   peak RSS {mem:7.0f} MiB ({mem / hf_mem:5.3f}x HF)"
        )


if __name__ == "__main__":
    main()
