"""The quality and leak report stored on each run: computed after training and after each batch."""

from __future__ import annotations

import logging
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from generations.models import Snippet
from trainer.corpus import corpus_messages
from trainer.models import TrainingRun

log = logging.getLogger(__name__)
EVAL_TOKENS = 20_000  # per model: enough for a stable perplexity, seconds on a CPU


def _redaction(hyperparameters: dict):
    from trainer.ml.redaction import RedactionConfig

    raw = hyperparameters.get("redaction") or {}
    if isinstance(raw, bool):
        return RedactionConfig(enabled=raw)
    fields = {k: v for k, v in raw.items() if k in RedactionConfig.__dataclass_fields__}
    if "words" in fields:
        fields["words"] = tuple(fields["words"])
    return RedactionConfig(**fields)


def leak_figures(run: TrainingRun) -> dict:
    snippets = Snippet.objects.filter(run=run)
    total = snippets.count()
    leaks = snippets.filter(longest_shared_run__gte=settings.JOE_LEAK_THRESHOLD).count()
    return {
        "snippets": total,
        "leaks": leaks,
        "threshold": settings.JOE_LEAK_THRESHOLD,
        "rate": leaks / total if total else None,
    }


def compute_report(run: TrainingRun, *, with_perplexity: bool = True) -> dict:
    """Perplexity against both baselines, speaker fidelity and leak rate for one finished run."""
    # Imported here: torch stays out of the web processes, which only enqueue this.
    from generations.quality import (
        held_out_split,
        model_perplexity,
        speaker_fidelity,
        unigram_perplexity,
    )
    from trainer.ml.base_models import load_checkpoint
    from trainer.services import load_base

    folder = Path(run.checkpoint_dir)
    model, tokenizer, chat_format = load_checkpoint(folder)
    hp = run.hyperparameters
    window_len = int(hp.get("window_len", 256))
    held = held_out_split(
        list(corpus_messages()),
        tokenizer,
        chat_format,
        window_len=window_len,
        session_gap_minutes=float(hp.get("session_gap_minutes", settings.JOE_SESSION_GAP_MINUTES)),
        val_fraction=float(hp.get("val_fraction", 0.1)),
        val_max_tokens=int(hp.get("val_max_tokens", 16_384)),
        redaction=_redaction(hp),
    )
    report: dict = dict(run.report or {})
    if with_perplexity and held.val_sessions:
        fine_tuned = model_perplexity(
            model, tokenizer, held, window_len=window_len, max_tokens=EVAL_TOKENS
        )
        del model
        base_model, base_tokenizer = load_base(run.base_model, chat_format)
        base = model_perplexity(
            base_model, base_tokenizer, held, window_len=window_len, max_tokens=EVAL_TOKENS
        )
        del base_model
        unigram = unigram_perplexity(held, vocab_size=len(tokenizer))
        names = dict(chat_format.speakers, __all__="Everyone")
        report["perplexity"] = [
            {
                "speaker": slug,
                "name": names.get(slug, slug),
                "fine_tuned": fine_tuned.get(slug),
                "base_model": base.get(slug),
                "unigram": unigram.get(slug),
            }
            for slug in ["__all__", *sorted(s for s in fine_tuned if s != "__all__")]
        ]
    generated = [
        (s.speaker.slug, s.text)
        for s in Snippet.objects.filter(run=run, kind=Snippet.Kind.MESSAGE, speaker__isnull=False)
        .select_related("speaker")
        .order_by("-created_at")[:2000]
    ]
    report["fidelity"] = speaker_fidelity(held.train_texts, generated, val_texts=held.val_texts)
    report["leaks"] = leak_figures(run)
    report["computed_at"] = timezone.now().isoformat()
    return report


def refresh_report(run_id: int, *, with_perplexity: bool = True) -> dict:
    run = TrainingRun.objects.get(pk=run_id)
    if not run.checkpoint_dir or not Path(run.checkpoint_dir).exists():
        return {}
    report = compute_report(run, with_perplexity=with_perplexity)
    TrainingRun.objects.filter(pk=run_id).update(report=report)
    return report


def index_what_the_run_learnt(run_id: int) -> None:
    """Build the run's leak index as its training ends, rather than at its first generation: a
    friend who deletes their messages in between takes them out of the corpus, not out of the
    weights, and the guard must still know them."""
    from generations.services import build_leak_index, leak_index_path

    run = TrainingRun.objects.get(pk=run_id)
    trained = bool(run.checkpoint_dir) and Path(run.checkpoint_dir).is_dir()
    if trained and not leak_index_path(run).is_file():
        build_leak_index(run)


@shared_task(name="generations.report.refresh_run_report", acks_late=True)
def refresh_run_report(run_id: int, with_perplexity: bool = True) -> None:
    """Runs on the gpu queue (it loads models). A failure is logged, never fatal to the run."""
    if with_perplexity:  # queued as training ends, ahead of any generation on the same queue
        try:
            index_what_the_run_learnt(run_id)
        except Exception:  # the first generation builds it then; the report still comes
            log.exception("Leak index for run %s could not be built", run_id)
    try:
        refresh_report(run_id, with_perplexity=with_perplexity)
    except Exception:  # a report is a nice-to-have on top of a finished run: log, don't fail it
        log.exception("Quality report for run %s failed", run_id)
        TrainingRun.objects.filter(pk=run_id).update(
            report={"error": "The quality report could not be computed; see the worker log."}
        )
