"""`manage.py generate`: run a generation batch in this terminal, with a progress bar.

The batch gets a row like one started on the Batches page, so it shows up there; it just does
not wait for a worker.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from generations import services
from generations.forms import SamplingFields
from generations.tasks import INTERNAL_ERROR
from joe_site.jobs import JobStatus
from trainer.models import TrainingRun


class Command(BaseCommand):
    help = "Generate a batch of snippets from a trained model in this terminal."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--run", type=int, help="training run id (default: the active model)")
        parser.add_argument(
            "--per-speaker", type=int, default=5, help="messages per speaker not opted out"
        )
        parser.add_argument("--conversations", type=int, default=0)
        parser.add_argument("--temperature", type=float, default=0.9)
        parser.add_argument("--top-p", type=float, default=0.95)
        parser.add_argument("--top-k", type=int, default=50)
        parser.add_argument("--max-new-tokens", type=int, default=60)
        parser.add_argument("--prompt", default="", help="every message starts with this")
        parser.add_argument("--seed", type=int, help="base seed (default: random)")

    def handle(self, *args: Any, **options: Any) -> None:
        run = self._run(options["run"])
        speakers = self._speakers(run)
        self._check(options)
        try:
            batch = services.create_batch(
                run=run,
                per_speaker=dict.fromkeys(speakers, options["per_speaker"]),
                conversations=options["conversations"],
                temperature=options["temperature"],
                top_p=options["top_p"],
                top_k=options["top_k"],
                max_new_tokens=options["max_new_tokens"],
                prompt=options["prompt"],
                base_seed=secrets.randbelow(2**31) if options["seed"] is None else options["seed"],
            )
        except services.GenerationError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Batch {batch.pk} from “{run}”: {batch.get_absolute_url()}")
        with tqdm(total=batch.progress_total, unit="snippet", dynamic_ncols=True) as bar:

            def show(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                batch = services.execute_batch(batch.pk, on_progress=show)
            except services.GenerationError as exc:
                batch.mark_failed(str(exc))
                raise CommandError(str(exc)) from None
            except KeyboardInterrupt:
                batch.mark_cancelled()
                raise CommandError(f"Stopped. Batch {batch.pk} keeps what it saved.") from None
            except Exception as exc:  # the row must not stay "running" on the Batches page
                batch.mark_failed(INTERNAL_ERROR.format(kind=type(exc).__name__))
                raise
        batch.refresh_from_db()
        if batch.status != JobStatus.SUCCEEDED:
            raise CommandError(batch.error or f"The batch ended {batch.get_status_display()}.")
        stats = batch.stats
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: kept {stats.get('kept', 0)} of {stats.get('generated', 0)} generated "
                f"({stats.get('too_short', 0)} too short, {stats.get('near_duplicate', 0)} near "
                f"duplicates, {stats.get('leak', 0)} verbatim leaks hidden). {batch.progress_note}."
            )
        )

    def _check(self, options: dict[str, Any]) -> None:
        """The bounds the Batches page's form puts on the same numbers."""
        names = {"temperature": "--temperature", "top_p": "--top-p", "top_k": "--top-k",
                 "max_new_tokens": "--max-new-tokens"}  # fmt: skip
        sampling = SamplingFields({field: options[field] for field in names})
        for field, errors in sampling.errors.items():
            raise CommandError(f"{names[field]}: {' '.join(errors)}")
        for name in ("per_speaker", "conversations"):
            if options[name] < 0:
                raise CommandError(f"--{name.replace('_', '-')} cannot be negative.")

    def _run(self, run_id: int | None) -> TrainingRun:
        if run_id is None:
            run = TrainingRun.active()
            if run is None:
                raise CommandError("There is no active model; pass --run ID.")
            return run
        run = TrainingRun.objects.filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"There is no training run {run_id}.")
        return run

    def _speakers(self, run: TrainingRun) -> list[str]:
        from generations.live import allowed_speakers

        return [speaker.slug for speaker in allowed_speakers(run)]
