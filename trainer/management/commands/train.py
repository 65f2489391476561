"""`manage.py train`: run a fine-tuning run in this terminal, with a progress bar.

The run gets a row like one started on the page, so it shows up there (live) and can be made the
active model; it just does not wait for a worker.
"""

from __future__ import annotations

import socket
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from joe_site.jobs import JobStatus
from trainer import services
from trainer.ml.loop import Progress


class Command(BaseCommand):
    help = "Fine-tune a model on the corpus in this terminal."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base",
            default=settings.JOE_DEFAULT_BASE_MODEL,
            help="smollm2-135m (default), tiny, a Hugging Face id or a model folder",
        )
        parser.add_argument("--max-steps", type=int)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--make-active", action="store_true", help="make it the active model if it succeeds"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        hyperparameters = {
            key: options[option]
            for key, option in (("max_steps", "max_steps"), ("batch_size", "batch_size"))
            if options[option] is not None
        }
        run = services.new_run(
            name=options["name"],
            base_model=options["base"],
            hyperparameters=hyperparameters,
            activate_on_success=options["make_active"],
        )
        self.stdout.write(f"Run {run.pk} “{run}”: {run.get_absolute_url()}")
        with tqdm(total=run.progress_total, unit="step", dynamic_ncols=True) as bar:

            def show(progress: Progress) -> None:
                bar.total = progress.total_steps
                bar.update(progress.step - bar.n)
                losses = {
                    "loss": progress.train_loss,
                    "val": progress.val_loss,
                    "tok/s": progress.tokens_per_s or None,
                }
                bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if v is not None})

            try:
                run = services.execute_run(
                    run.pk, worker_host=socket.gethostname(), on_progress=show
                )
            except KeyboardInterrupt:
                run.mark_cancelled()
                raise CommandError(
                    f"Stopped. Run {run.pk} keeps its last checkpoint, if it had one."
                ) from None
        if run.status != JobStatus.SUCCEEDED:
            raise CommandError(run.error or f"The run ended {run.get_status_display().lower()}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: validation loss {run.final_val_loss:.3f} "
                f"(perplexity {run.perplexity:.1f}), checkpoint in {run.checkpoint_dir}"
                + (" — now the active model." if run.is_active else ".")
            )
        )
