"""Starting, running, resuming and retraining fine-tuning runs: the writes behind the trainer."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from ingest.models import Speaker
from joe_site.jobs import ACTIVE_STATUSES, HEARTBEAT_STALE, JobStatus
from joe_site.lost_messages import send_on_commit
from joe_site.workers import START_GPU_WORKER, gpu_worker_is_up
from trainer.corpus import chat_format, corpus_messages
from trainer.models import HEARTBEAT_EVERY, MAX_WORKER_LOSSES, TrainingRun

# torch and transformers load only where a run executes (the worker), never in web processes,
# which import this module to start and cancel runs.
if TYPE_CHECKING:
    from trainer.ml.chat_format import ChatFormat
    from trainer.ml.data import DataConfig
    from trainer.ml.loop import Progress, TrainConfig

logger = logging.getLogger(__name__)

TINY_BASE = "tiny"
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    "max_steps": 500,
    "batch_size": 8,
    "grad_accum": 1,
    "lr": 2e-4,
    "schedule": "cosine",
    "warmup_steps": 20,
    "window_len": 256,
    "seed": 0,
    "val_fraction": 0.1,
    "val_max_tokens": 16_384,
    "redaction": {"enabled": True, "emails": True, "phones": True, "urls": True, "words": []},
}
# The page refreshes every two seconds; the loop reports about as often.
PROGRESS_EVERY_S = 2.0
# The worker checks for a cancel click at most this often (one query per check).
CANCEL_CHECK_EVERY_S = 1.0

REPORT_NOT_QUEUED = (
    "The quality report could not be queued: the task queue (Redis) did not answer as the run "
    "ended. The model is fine; its leak index is built at its first generation."
)
NO_CORPUS = "No trainable messages: upload an export and map its people to speakers first."


class TrainingError(Exception):
    """A run could not start or finish; the message is a sentence for the run's page."""


class RunBusy(Exception):
    """Another worker reported on the run within HEARTBEAT_STALE: it may still be training it.

    The task tries again later (tasks.train_run) instead of dropping the job: if that worker
    was in fact killed a moment ago (and the broker handed the job on at once), its heartbeat
    goes stale and the next try takes the run over."""

    def __init__(self, run: TrainingRun) -> None:
        super().__init__(f"Run {run.pk} is held by {run.worker_host}")
        self.run = run


NO_GPU_WORKER = f"No GPU worker is running, so this run cannot start. {START_GPU_WORKER}"
NO_GPU_WORKER_YET = f"No GPU worker has taken this run yet: none may be running. {START_GPU_WORKER}"
_NO_GPU_WORKER_KEY = "trainer:gpu-worker-not-up"
WAITS_BEHIND = "It waits for “{run}”, which the GPU worker is training: one run at a time."

WORKER_LOST_TOO_OFTEN = (
    "Its worker stopped {n} times in a row before the run could save a new checkpoint, each "
    "time without being asked to: it was most likely killed for using too much memory. "
    "Lower the batch size or the window length (raise gradient accumulation to keep the same "
    "effective batch) and start a new run."
)


# --- starting runs -------------------------------------------------------------------------------


def resolved_hyperparameters(overrides: dict[str, Any]) -> dict[str, Any]:
    """The defaults with the given values on top, plus what the settings decide at start time.

    Stored on the row as the loop will receive them, so a resumed run or a retrain uses the very
    same numbers even if the defaults or the settings change later.
    """
    hp = {**DEFAULT_HYPERPARAMETERS, **overrides}
    hp["redaction"] = {**DEFAULT_HYPERPARAMETERS["redaction"], **overrides.get("redaction", {})}
    hp.setdefault("session_gap_minutes", settings.JOE_SESSION_GAP_MINUTES)
    # About twenty points on the loss plot, whatever the length of the run.
    hp.setdefault("eval_every", max(1, int(hp["max_steps"]) // 20))
    return hp


def stored_settings(
    name: str, base_model: str, hyperparameters: dict[str, Any]
) -> tuple[str, str, dict[str, Any]]:
    """The name, base model and hyperparameters a new run is stored with, given the form's."""
    base_model = base_model.strip() or settings.JOE_DEFAULT_BASE_MODEL
    hp = resolved_hyperparameters(hyperparameters)
    return name.strip() or f"{base_model}, {hp['max_steps']} steps", base_model, hp


def retrain_name(run: TrainingRun) -> str:
    return (run.name.removesuffix(" (retrain)") + " (retrain)")[:100]


def new_run(
    *,
    name: str,
    base_model: str,
    hyperparameters: dict[str, Any],
    created_by: Any = None,
    activate_on_success: bool = False,
    retrain_of: TrainingRun | None = None,
) -> TrainingRun:
    """A queued run row, not yet handed to a worker (the terminal command runs it itself)."""
    name, base_model, hp = stored_settings(name, base_model, hyperparameters)
    return TrainingRun.objects.create(
        name=name,
        base_model=base_model,
        hyperparameters=hp,
        created_by=created_by,
        activate_on_success=activate_on_success,
        retrain_of=retrain_of,
        progress_total=hp["max_steps"],
        progress_note="Waiting for a GPU worker",
    )


@transaction.atomic
def start_run(
    *,
    name: str,
    base_model: str,
    hyperparameters: dict[str, Any],
    created_by: Any,
    activate_on_success: bool = False,
    retrain_of: TrainingRun | None = None,
) -> TrainingRun:
    """Create a run and queue it for the GPU worker once the row is committed."""
    run = new_run(
        name=name,
        base_model=base_model,
        hyperparameters=hyperparameters,
        created_by=created_by,
        activate_on_success=activate_on_success,
        retrain_of=retrain_of,
    )
    _enqueue(run.pk)
    return run


def retrain(run: TrainingRun, *, created_by: Any = None) -> TrainingRun:
    """Train again with the same settings on today's corpus (after an opt-out, say).

    A retrain of the active model takes its place as soon as it succeeds
    (TrainingRun.retrain_takes_over).

    Once only: if the run already has a retrain that is queued, training or done, that one is
    returned. Two people's clicks take turns on a lock on the run's row, so the second waits
    for the first's retrain to be committed, then finds it instead of starting another.
    """
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        earlier = run.current_retrain()
        if earlier is not None:
            return earlier
        return start_run(
            name=retrain_name(run),
            base_model=run.base_model,
            hyperparameters=run.hyperparameters,
            created_by=created_by or run.created_by,
            activate_on_success=run.retrain_takes_over,
            retrain_of=run,
        )


def training_now(*, other_than: TrainingRun) -> TrainingRun | None:
    """The run a worker is training now, if any (a run whose worker went silent is not)."""
    return (
        TrainingRun.objects.filter(
            status=JobStatus.RUNNING, heartbeat_at__gt=timezone.now() - HEARTBEAT_STALE
        )
        .exclude(pk=other_than.pk)
        .first()
    )


def queue_note(run: TrainingRun) -> tuple[str, bool]:
    """Why a run has been queued for a while ("" while it has not), and whether that is a
    problem: the run the GPU worker is training first is not; no worker listening at all (asked
    of Redis, as live generation does) is."""
    if not run.queued_too_long:
        return "", False
    ahead = training_now(other_than=run)
    if ahead is not None:
        return WAITS_BEHIND.format(run=ahead), False
    # Asking takes a second with no worker to answer: the page, polled every two seconds,
    # asks once in a while (a worker that starts takes the run, which ends the note anyway).
    # "no", or "unknown" (the embedded broker cannot tell, or Redis did not answer: asking a
    # hung one waits 2 s, not to be done at every poll).
    asked = cache.get(_NO_GPU_WORKER_KEY)
    up = {"no": False, "unknown": None}.get(asked, True) if asked else gpu_worker_is_up()
    if up is not True and not asked:
        cache.set(_NO_GPU_WORKER_KEY, "no" if up is False else "unknown", 15)
    if up is None:
        return NO_GPU_WORKER_YET, True
    return ("", False) if up else (NO_GPU_WORKER, True)


def cancel_run(run: TrainingRun) -> None:
    """Ask the worker to stop the run; a run whose worker is long gone is cancelled at once."""
    run.request_cancel()
    if run.worker_silent:
        # Killed in a terminal, say: no worker will ever read the request.
        TrainingRun.objects.filter(pk=run.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.CANCELLED,
            finished_at=timezone.now(),
            progress_note="Cancelled: its worker had stopped reporting",
        )
        run.refresh_from_db()


def requeue_lost_runs(*, worker_host: str) -> list[int]:
    """Queue again the runs a killed worker of this name left as running.

    Called when a worker starts: the same worker name cannot still be running them, so they were
    interrupted. Each continues from its last checkpoint.
    """
    with transaction.atomic():
        lost = list(
            TrainingRun.objects.select_for_update()
            .filter(status=JobStatus.RUNNING, worker_host=worker_host)
            .values_list("pk", "progress_done", "worker_stopping")
        )
        for pk, step, stopping in lost:
            counted = {} if stopping else _one_more_loss()
            TrainingRun.objects.filter(pk=pk).update(
                status=JobStatus.QUEUED,
                progress_note=f"The worker stopped at step {step}; waiting to resume",
                eta_seconds=None,
                worker_stopping=False,
                **counted,
            )
            _enqueue(pk)
    return [pk for pk, _, _ in lost]


def note_worker_stopping(*, worker_host: str) -> int:
    """The worker of this name was asked to shut down (Celery's warm shutdown: a restart, an
    upgrade): the runs it holds stop with it, and resume later without counting as lost."""
    return TrainingRun.objects.filter(status=JobStatus.RUNNING, worker_host=worker_host).update(
        worker_stopping=True,
        progress_note="Its worker is shutting down: the run resumes from its last checkpoint "
        "when a worker is back",
    )


def _one_more_loss() -> dict[str, Any]:
    return {
        "worker_losses": F("worker_losses") + 1,
        "worker_losses_total": F("worker_losses_total") + 1,
    }


def _enqueue(run_id: int) -> None:
    from trainer.tasks import train_run

    send_on_commit(TrainingRun, run_id, lambda: train_run.delay(run_id))


# --- running them --------------------------------------------------------------------------------


def execute_run(
    run_id: int,
    *,
    worker_host: str = "",
    on_progress: Callable[[Progress], None] | None = None,
) -> TrainingRun:
    """Train a run to the end (or resume it), recording everything on its row.

    Safe to call twice for the same run: a finished run is left alone, and a run another live
    worker may be training raises RunBusy, untouched.
    """
    worker_host = worker_host or socket.gethostname()
    run = _claim(run_id, worker_host)
    if run is None:
        return TrainingRun.objects.get(pk=run_id)
    try:
        with _Heartbeat(run.pk):
            _train(run, on_progress)
    except TrainingError as error:
        run.mark_failed(str(error))
    except Exception as error:
        logger.exception("Run %s failed", run_id)
        run.mark_failed(
            f"Training stopped with an unexpected error ({type(error).__name__}: {error}). "
            "The worker's log has the details."
        )
        raise
    run.refresh_from_db()
    return run


def _claim(run_id: int, worker_host: str) -> TrainingRun | None:
    """Take the run for this worker, or None when there is nothing for it to do."""
    now = timezone.now()
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.status not in ACTIVE_STATUSES:
            return None  # finished, failed or cancelled: a duplicate delivery
        if run.cancel_requested:
            run.mark_cancelled()
            return None
        if run.held_by_another(worker_host, now):
            raise RunBusy(run)  # another worker may be alive and training it
        losses = {}
        if run.status == JobStatus.RUNNING and not run.worker_stopping:
            # Still marked running, and no live worker holds it: its worker was lost (a killed
            # pool process whose job the broker handed straight back, or a silent worker), and
            # not because it was asked to shut down.
            losses = {
                "worker_losses": run.worker_losses + 1,
                "worker_losses_total": run.worker_losses_total + 1,
            }
        if losses.get("worker_losses", run.worker_losses) >= MAX_WORKER_LOSSES:
            n = losses.get("worker_losses", run.worker_losses)
            run._save_fields(**losses)
            run.mark_failed(WORKER_LOST_TOO_OFTEN.format(n=n))
            logger.error("Run %s failed: its worker was lost %s times in a row", run.pk, n)
            return None
        first_start = run.started_at is None
        run._save_fields(
            status=JobStatus.RUNNING,
            worker_host=worker_host,
            heartbeat_at=now,
            started_at=run.started_at or now,
            error="",
            worker_stopping=False,
            **losses,
        )
    if first_start:
        # A folder left by an earlier database with the same run number is not this run's.
        shutil.rmtree(run.run_dir, ignore_errors=True)
    return run


def _train(run: TrainingRun, on_progress: Callable[[Progress], None] | None) -> None:
    import torch

    from trainer.ml.data import build_dataset
    from trainer.ml.loop import CHECKPOINT_DIR, checkpoint_path, pick_device, train

    train_config, data_config = _configs(run.hyperparameters)
    fmt = chat_format()
    if not fmt.speakers:
        raise TrainingError(NO_CORPUS)
    # Recorded before a message is read: a friend who opts out while the data is built (minutes
    # on a large corpus) flags this run like any other that learnt from them.
    speaker_ids = sorted(Speaker.objects.filter(slug__in=fmt.speakers).values_list("pk", flat=True))
    run._save_fields(speaker_ids=speaker_ids)

    run.set_progress(0, note=f"Loading the base model {run.base_model}")
    model, tokenizer = load_base(run.base_model, fmt)

    run.set_progress(0, note="Building the dataset")
    dataset = build_dataset(corpus_messages(), tokenizer, fmt, data_config)
    if not dataset.train:
        raise TrainingError(NO_CORPUS)
    if not dataset.val:
        raise TrainingError(
            "The corpus is too small to hold back validation data: "
            "training needs chat from at least two separate conversations or sittings."
        )
    summary = {**dataset.summary, "names": fmt.speakers}

    device = pick_device(train_config.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    fields: dict[str, Any] = {
        "dataset_summary": summary,
        "device": device_name,
        "progress_total": train_config.total_steps(len(dataset.train)),
        "progress_note": "Training",
    }
    ckpt = checkpoint_path(run.run_dir)
    if ckpt is not None:
        step = _checkpoint_step(ckpt)
        fields.update(resumed_from_step=step, checkpoint_step=step, progress_done=step)
        fields["progress_note"] = f"Resumed from step {step}"
    run._save_fields(**fields)

    checkpoint_dir = str(run.run_dir / CHECKPOINT_DIR)

    def report(progress: Progress) -> None:
        update: dict[str, Any] = {
            "progress_done": progress.step,
            "progress_total": progress.total_steps,
            "loss_history": progress.history,
            "heartbeat_at": timezone.now(),
        }
        # Evaluation reports carry no throughput; keep the last real figures on the page.
        if progress.tokens_per_s:
            update["tokens_per_second"] = progress.tokens_per_s
        if progress.eta_s is not None:
            update["eta_seconds"] = progress.eta_s
        if progress.event == "checkpoint":
            # Progress since the worker was last lost: losses count again from zero.
            update.update(
                checkpoint_step=progress.step, checkpoint_dir=checkpoint_dir, worker_losses=0
            )
        run._save_fields(**update)
        if on_progress is not None:
            on_progress(progress)

    try:
        result = train(
            train_config,
            model,
            tokenizer,
            dataset,
            run.run_dir,
            on_progress=report,
            should_stop=_CancelCheck(run),
        )
    except torch.cuda.OutOfMemoryError as error:
        raise TrainingError(
            "The GPU ran out of memory: lower the batch size or the window length "
            "(raise gradient accumulation to keep the same effective batch)."
        ) from error
    except ValueError as error:
        raise TrainingError(_explain(error, model)) from error

    done: dict[str, Any] = {
        "loss_history": result.history,
        "progress_done": result.step,
        "eta_seconds": None,
        "tokens_per_second": result.tokens_per_s or run.tokens_per_second,
        "worker_losses": 0,  # it got to the end of this attempt
    }
    if result.checkpoint is not None:
        # The step the checkpoint on disk holds: a cancel keeps the last one, from before.
        kept = _checkpoint_step(result.checkpoint)
        done.update(checkpoint_dir=str(result.checkpoint), checkpoint_step=kept)
    if result.status == "cancelled":
        note = f"Cancelled at step {result.step}" + (
            f"; the checkpoint from step {kept} is kept" if result.checkpoint else ""
        )
        run._save_fields(**done, progress_note=note)
        run.mark_cancelled()
        return
    run._save_fields(**done, final_val_loss=result.final_val_loss, progress_note="Finished")
    if result.checkpoint is not None:
        _drop_resume_state(result.checkpoint)
    run.mark_succeeded()
    # Read again: staff who made another run active meanwhile took the takeover back.
    if TrainingRun.objects.filter(pk=run.pk, activate_on_success=True).exists():
        run.make_active()
    _queue_quality_report(run.pk)


def _queue_quality_report(run_id: int) -> None:
    """Perplexity against the baselines is computed next on the same queue, after the run.

    Sent by name: the report belongs to generations (it scores snippets too), a later stage that
    the trainer must not import.
    """
    from joe_site.celery import app

    def send() -> None:
        try:
            app.send_task("generations.report.refresh_run_report", args=[run_id])
        except Exception:  # the broker did not answer: the run succeeded all the same
            logger.exception("Could not queue the quality report of run %s", run_id)
            TrainingRun.objects.filter(pk=run_id).update(report={"error": REPORT_NOT_QUEUED})

    transaction.on_commit(send)


def _configs(hp: dict[str, Any]) -> tuple[TrainConfig, DataConfig]:
    """The loop's and the data's settings from a run's stored hyperparameters."""
    from trainer.ml.data import DataConfig, RedactionConfig
    from trainer.ml.loop import TrainConfig

    train_keys = {f.name for f in fields(TrainConfig)}
    data_keys = {f.name for f in fields(DataConfig)}
    unknown = sorted(set(hp) - train_keys - data_keys)
    if unknown:
        raise TrainingError(f"Unknown hyperparameters: {', '.join(unknown)}.")
    redaction = dict(hp.get("redaction", {}))
    redaction["words"] = tuple(redaction.get("words", ()))
    try:
        train_config = TrainConfig(
            **{"progress_every_s": PROGRESS_EVERY_S}
            | {k: v for k, v in hp.items() if k in train_keys}
        )
        data_config = DataConfig(
            **{k: v for k, v in hp.items() if k in data_keys and k != "redaction"},
            redaction=RedactionConfig(**redaction),
        )
    except TypeError as error:
        raise TrainingError(f"The run's hyperparameters are not valid: {error}.") from error
    return train_config, data_config


def load_base(name: str, fmt: ChatFormat) -> tuple[Any, Any]:
    from trainer.ml.base_models import load_for_training

    cache = Path(settings.MODELS_DIR) / "base"
    source: str | Path = tiny_base_folder(cache) if name == TINY_BASE else name
    try:
        return load_for_training(source, fmt, cache)
    except OSError as error:  # a missing folder, or a hub id on a server without internet
        logger.warning("Could not load base model %r: %s", name, error)
        raise TrainingError(
            f"Could not load the base model “{name}”: it is not a folder on the worker, and "
            "the worker could not download it (no internet, or no such model)."
        ) from error
    except (ValueError, ImportError, KeyError, RuntimeError) as error:
        # A folder that is not a causal language model transformers can read (a tokenizer it
        # cannot build, a config it does not know, weights that do not fit the config).
        logger.warning("Could not load base model %r", name, exc_info=True)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise TrainingError(
            f"Could not load the base model “{name}”: it is not a model joe can train "
            f"(a GPT-2-class causal language model with its tokenizer). {first_line[:200]}"
        ) from error


def tiny_base_folder(cache: Path) -> Path:
    """A small randomly initialised GPT-2, built once: for trying the pipeline in seconds."""
    from trainer.ml.base_models import build_tiny_gpt2

    folder = Path(cache) / "tiny-gpt2"
    if folder.is_dir():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-gpt2.", dir=cache))
    try:
        build_tiny_gpt2(tmp / "model", n_positions=1024)
        try:
            (tmp / "model").rename(folder)
        except OSError:
            if not folder.is_dir():  # not a twin process finishing first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _drop_resume_state(checkpoint: Path) -> None:
    """A finished run never resumes: its optimizer state (twice the weights' size) goes."""
    from trainer.ml.loop import STATE_FILE

    (Path(checkpoint) / STATE_FILE).unlink(missing_ok=True)


def delete_run_files(run_dir: Path) -> None:
    """Remove a deleted run's folder (checkpoints, leak index): nothing of it stays on disk."""
    shutil.rmtree(run_dir, ignore_errors=True)
    if run_dir.exists():
        logger.warning("Could not remove %s entirely", run_dir)


class _Heartbeat:
    """Writes the run's heartbeat every HEARTBEAT_EVERY while this worker holds it, whatever
    it is doing: minutes of downloading a base model or building the data write no progress,
    and a page must not take them for a lost worker."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"run-{run_id}-heartbeat", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(HEARTBEAT_EVERY.total_seconds()):
                try:
                    TrainingRun.objects.filter(pk=self.run_id, status=JobStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception as error:  # noqa: BLE001 (the thread must outlive any of them)
                    logger.warning("Run %s: could not write its heartbeat: %s", self.run_id, error)
                    # A broken connection stays broken in a thread Django never recycles: drop
                    # it, and the next beat opens a new one.
                    with contextlib.suppress(Exception):
                        connections.close_all()
        finally:
            connections.close_all()  # this thread's connections only


def _checkpoint_step(ckpt: Path) -> int:
    from trainer.ml.loop import INFO_FILE

    return int(json.loads((ckpt / INFO_FILE).read_text())["step"])


def _explain(error: ValueError, model: Any) -> str:
    text = str(error)
    if "different data" in text:
        return (
            "The messages this run trains on changed since it started (an export imported or "
            "deleted, speakers merged, an identity excluded or moved, someone opting out or "
            "deleting their messages), so it cannot continue from its checkpoint: start a new run."
        )
    if "different settings" in text:
        return "This run's checkpoint was made with other settings, so it cannot resume from it."
    if "positions" in text:
        limit = getattr(model.config, "max_position_embeddings", "?")
        return f"The window length is longer than the base model can read ({limit} tokens)."
    return f"Training could not run: {text}."


class _CancelCheck:
    """The loop's should_stop: asks the database whether Cancel was clicked, at most once a
    second, so a fast step loop does not become a query loop."""

    def __init__(self, run: TrainingRun) -> None:
        self.run = run
        self.checked_at = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.checked_at < CANCEL_CHECK_EVERY_S:
            return False
        self.checked_at = now
        return self.run.cancel_was_requested()
