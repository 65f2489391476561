"""Fill a fresh joe with the demo: real chat messages → Slack export → ingest → training → batch.

Each step goes through the same services and Celery workers a person's clicks would, so the
visitor watches ingest, training and generation progress live on the site. Re-running reuses what
is already there: the same export is not imported twice and a finished demo run is not retrained
unless --retrain is given.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef

from generations.models import GenerationBatch, Snippet
from generations.services import start_batch
from ingest.models import Export, Message, Speaker
from ingest.services import create_export, queue_import
from joe_site.demo_export import build_demo_export
from joe_site.jobs import ACTIVE_STATUSES, JobStatus
from trainer.corpus import trainable_speakers
from trainer.models import TrainingRun
from trainer.services import start_run

FULL = {
    "speakers": 8,
    "conversations": None,
    "base_model": "smollm2-135m",
    # 4x128 tokens per step ran at 154-164 tokens/s for a 135M model on 2 shared cores: 180 steps
    # trained in 11.4 minutes, evaluations included, and the first snippets landed after about 12
    # (benchmarks/RESULTS.md, "Demo"), well inside 20 minutes.
    # A few evaluations on a small held-out set: each one reads all of it.
    "hyperparameters": {
        "max_steps": 180,
        "batch_size": 4,
        "window_len": 128,
        "lr": 3e-4,
        "eval_every": 45,
        "val_max_tokens": 8192,
    },
    "per_speaker": 6,
    "conversations_to_generate": 4,
}
QUICK = {
    "speakers": 4,
    "conversations": 40,
    "base_model": "tiny",
    # Evaluating at every step (the default gives a 30-step run twenty points) read the whole
    # held-out set 31 times and took three quarters of the quick demo's time.
    "hyperparameters": {
        "max_steps": 30,
        "batch_size": 8,
        "window_len": 128,
        "lr": 1e-3,
        "eval_every": 5,
        "val_max_tokens": 4096,
    },
    "per_speaker": 3,
    "conversations_to_generate": 1,
}
# A demo job that ended so (an import or a batch cancelled from its page, say) starts again.
GAVE_UP = (JobStatus.FAILED, JobStatus.CANCELLED)


def corpus_size() -> tuple[int, int]:
    """Messages in the corpus and the people who wrote them. Not the demo export's own counts:
    an import of a file the corpus already holds counts only the messages it added (none)."""
    speakers = Speaker.objects.filter(
        Exists(Message.objects.filter(identity__speaker=OuterRef("pk")))
    )
    return Message.objects.count(), speakers.count()


class Command(BaseCommand):
    help = "Load the demo corpus, train a model on it and generate a first batch of snippets."

    def add_arguments(self, parser):
        parser.add_argument("--quick", action="store_true", help="tiny model, small corpus (CI)")
        parser.add_argument("--retrain", action="store_true", help="train a new demo model")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds per step")

    def handle(self, *args, quick: bool, retrain: bool, timeout: float, **options):
        plan = QUICK if quick else FULL
        self.timeout = timeout
        admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
        self.ingest(plan, admin)
        messages, people = corpus_size()
        self.stdout.write(f"Corpus: {messages:,} messages from {people} people.")
        run = self.train(plan, admin, retrain=retrain)
        self.stdout.write(f"Model: {run.name}, validation perplexity {run.perplexity:.1f}.")
        self.generate(plan, admin, run)
        # The gallery's count (earlier batches too, less what staff hid), not the newest batch's.
        shown = Snippet.objects.visible().count()
        self.stdout.write(self.style.SUCCESS(f"Demo ready: {shown} snippets in the gallery."))

    # -- steps ----------------------------------------------------------------------------------

    def ingest(self, plan: dict, admin) -> Export:
        name = "chitchat-demo-quick.zip" if plan is QUICK else "chitchat-demo.zip"
        path = Path(settings.DATA_DIR) / "demo" / name
        if not path.exists():
            self.stdout.write("Building the demo Slack export from the chitchat dataset...")
            build_demo_export(
                path, speakers=plan["speakers"], max_conversations=plan["conversations"]
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        export = Export.objects.filter(sha256=digest).exclude(status__in=GAVE_UP).first()
        if export is None:
            with path.open("rb") as handle:
                export = create_export(
                    upload=File(handle, name=name),
                    sha256=digest,
                    kind="slack",
                    keep_file=False,
                    uploaded_by=admin,
                )
            queue_import(export=export)
        return self.wait(Export, export.pk, "import", doing=f"Importing {name}")

    def train(self, plan: dict, admin, *, retrain: bool) -> TrainingRun:
        # This plan's own demo run: the full demo after a quick one trains SmolLM2, it does not
        # reuse the tiny model.
        demo_runs = TrainingRun.objects.filter(name=f"Demo ({plan['base_model']})")
        run = demo_runs.filter(status__in=ACTIVE_STATUSES).first()
        if run is None and not retrain:
            run = demo_runs.filter(status=JobStatus.SUCCEEDED).first()
        if run is None:
            run = start_run(
                name=f"Demo ({plan['base_model']})",
                base_model=plan["base_model"],
                hyperparameters=plan["hyperparameters"],
                created_by=admin,
                activate_on_success=True,
            )
        run = self.wait(TrainingRun, run.pk, "training run", doing=f"Training {run.name}")
        if not TrainingRun.active():
            # As the Make active button does: a run still training to take the active model's
            # place (`train --make-active`, say) would replace the demo's model when done.
            for takeover in run.choose_as_active():
                self.stdout.write(
                    f"“{takeover}”, still training, will not take the demo model's place when "
                    f"done (make it active on /trainer/{takeover.pk}/ once it has finished)."
                )
        return run

    def generate(self, plan: dict, admin, run: TrainingRun) -> GenerationBatch:
        batch = GenerationBatch.objects.filter(run=run).exclude(status__in=GAVE_UP).first()
        if batch is None:
            speakers = trainable_speakers().filter(pk__in=run.speaker_ids)
            batch = start_batch(
                run=run,
                per_speaker={s.slug: plan["per_speaker"] for s in speakers},
                conversations=plan["conversations_to_generate"],
                temperature=0.9,
                top_p=0.95,
                top_k=50,
                max_new_tokens=40,
                prompt="",
                base_seed=1234,
                created_by=admin,
            )
        return self.wait(GenerationBatch, batch.pk, "generation batch", doing="Generating a batch")

    def wait(self, model, pk: int, what: str, *, doing: str):
        """Wait for the row's job; while it is not done, say once where to watch it (a job left
        by an earlier run of the demo too, resuming or still queued)."""
        deadline = time.monotonic() + self.timeout
        announced = False
        while True:
            row = model.objects.get(pk=pk)
            if row.status == JobStatus.SUCCEEDED:
                return row
            if not announced and row.status in ACTIVE_STATUSES:
                self.stdout.write(f"{doing} (watch it on {row.get_absolute_url()})...")
                announced = True
            if row.status in GAVE_UP:
                raise CommandError(f"The demo {what} {row.status}: {row.error or 'cancelled'}")
            if time.monotonic() > deadline:
                raise CommandError(
                    f"The demo {what} did not finish in {self.timeout:.0f} s. Is a worker "
                    "running? (bin/demo starts them; see data/logs/.)"
                )
            time.sleep(2)
