"""Live generation for members: start one, stream it onto its row as the worker writes, save it.

Streaming is by polling the row, which works with Redis and with the embedded broker alike: the
worker writes the text so far onto `LiveGeneration.lines` every few tokens, after the leak guard
has passed it, and the page asks for the row every 300 ms until the job ends.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from generations import services
from generations.models import Bubble, GenerationBatch, LiveGeneration, Snippet
from generations.services import GenerationError
from ingest.models import Speaker
from joe_site.jobs import HEARTBEAT_STALE, SEND_FAILED, JobStatus
from joe_site.lost_messages import send_on_commit
from joe_site.workers import gpu_worker_is_up
from trainer.models import TrainingRun

log = logging.getLogger(__name__)

NO_WORKER = (
    "No generation worker is running right now, so nothing can be written live. "
    "Ask staff to start one, then try again."
)
WORKER_BUSY = (
    "The generation worker is busy with a longer job (a batch or a training run), so this could "
    "not start. Try again in a few minutes."
)
NO_WORKER_YET = (
    "No generation worker has picked this up yet: none may be running right now, or it is busy "
    "with another job. Still waiting a little longer…"
)
LEAK_STOPPED = (
    "This one started repeating a real message word for word, so joe stopped it and kept "
    "nothing. Try again."
)
LIVE_OFF = "Live generation is turned off on this site."
NOTHING_WRITTEN = "The model did not write anything this time. Try again."
OPENING_ONLY = (
    "The model wrote nothing past your opening words, so there is no fake to save: in the "
    "gallery your own words would pass for the model's. Try again."
)
WORKER_LOST = (
    "The generation worker stopped while writing this (it was restarted, or ran out of memory), "
    "so it will not finish. Try again."
)
WAITING = "Waiting for the generation worker"
MEMBER_GONE = "Cancelled: whoever asked for it is no longer a member here, so nothing was written."
QUEUE_DOWN = (
    "The task queue did not answer, so this never reached the generation worker. "
    "Try again in a few minutes."
)
MESSAGE_LOST = (
    "This never reached the generation worker (the task queue lost it, or did not answer), "
    "and it waited too long to be sent again. Try again."
)
UNCLAIMED_HINT_AFTER = timedelta(seconds=5)  # queued this long: say a worker may be missing
UNCLAIMED_GIVE_UP_AFTER = timedelta(seconds=60)  # queued this long: stop waiting
# Queued this long with its message nowhere in the broker: sent again (lost_messages.py). A
# member watches the page, so this is seconds, not JOE_LOST_MESSAGE_AFTER's minutes.
LOST_AFTER = timedelta(seconds=5)
# Writing this long: its worker was lost (40 tokens a line take seconds, even on a CPU).
RUNNING_GIVE_UP_AFTER = timedelta(minutes=5)
FLUSH_EVERY_TOKENS = 3
FLUSH_EVERY_S = 0.25
CANCEL_CHECK_EVERY_S = 0.5
LIVE_MAX_NEW_TOKENS = 40


# ------------------------------------------------------------------------------ starting
def allowed_speakers(run: TrainingRun | None) -> QuerySet[Speaker]:
    """The voices a member may ask for: in the run, not opted out."""
    if run is not None and run.speaker_ids:
        return Speaker.objects.filter(pk__in=run.speaker_ids, opted_out=False).order_by(
            "display_name"
        )
    from trainer.corpus import trainable_speakers  # imports torch; only for runs without a list

    return trainable_speakers().order_by("display_name")


def opted_out_voices(run: TrainingRun | None) -> list[int]:
    """The ids of the run's voices who opted out since: asked for from a page that still offers
    them, they are told so by name (anyone else who opted out is no voice of the model)."""
    if run is None or not run.speaker_ids:
        return []
    return list(
        Speaker.objects.filter(pk__in=run.speaker_ids, opted_out=True).values_list("pk", flat=True)
    )


def no_model_message() -> str:
    """Why there is nothing to write with: no model trained yet, or none of them active."""
    trained = TrainingRun.objects.filter(status=JobStatus.SUCCEEDED).exclude(checkpoint_dir="")
    if trained.exists():
        return (
            "No model is active right now: staff can make a finished run the active model on "
            "the Training page."
        )
    return "There is no active model yet: staff need to train one first."


def rate_limit_message(member, *, now: datetime | None = None) -> str | None:
    """A sentence if the member has used up this hour's live generations, else None."""
    now = now or timezone.now()
    limit = settings.JOE_LIVE_RATE_LIMIT
    if limit <= 0:
        return LIVE_OFF
    recent = LiveGeneration.objects.filter(member=member, created_at__gt=now - timedelta(hours=1))
    if recent.count() < limit:
        return None
    oldest = recent.order_by("-created_at").values_list("created_at", flat=True)[limit - 1]
    minutes = max(1, round((oldest + timedelta(hours=1) - now).total_seconds() / 60))
    return (
        f"You have made {limit} live generation{'s' if limit != 1 else ''} in the last hour, "
        "the most allowed. "
        f"The next one frees up in {minutes} minute{'s' if minutes != 1 else ''}."
    )


def _worker_is_busy() -> bool:
    """A solo-pool worker busy with a job does not answer; its running rows say it is there,
    while it keeps reporting on them (a killed worker's rows stay running, and say nothing)."""
    now = timezone.now()
    beating = {"status": JobStatus.RUNNING, "heartbeat_at__gt": now - HEARTBEAT_STALE}
    return (
        GenerationBatch.objects.filter(**beating).exists()
        or LiveGeneration.objects.filter(
            status=JobStatus.RUNNING, started_at__gt=now - RUNNING_GIVE_UP_AFTER
        ).exists()
        or TrainingRun.objects.filter(**beating).exists()
    )


def start_live(
    *,
    member,
    speaker: Speaker | None = None,
    speakers: list[Speaker] | None = None,
    opening: str = "",
    temperature: float = 0.9,
) -> LiveGeneration:
    """Queue one live generation: one friend's message (`speaker`), or a conversation between
    `speakers`. Refuses with a sentence when it cannot run."""
    run = TrainingRun.active()
    if run is None or not run.checkpoint_dir:
        raise GenerationError(no_model_message())
    voices = [speaker] if speaker is not None else list(speakers or [])
    if not voices:
        raise GenerationError("Pick a friend to write as.")
    for voice in voices:
        if voice.opted_out:
            raise GenerationError(
                f"{voice.display_name} has opted out, so joe does not write in their voice."
            )
        if run.speaker_ids and voice.pk not in run.speaker_ids:
            raise GenerationError(f"The current model was not trained on {voice.display_name}.")
    if speaker is None and len(voices) < 2:
        raise GenerationError("Pick at least two friends for a conversation.")
    limited = rate_limit_message(member)
    if limited:
        raise GenerationError(limited)
    if gpu_worker_is_up() is False and not _worker_is_busy():
        raise GenerationError(NO_WORKER)

    with transaction.atomic():
        generation = LiveGeneration.objects.create(
            member=member,
            run=run,
            speaker=speaker,
            conversation=speaker is None,
            speaker_ids=[voice.pk for voice in voices],
            opening=opening.strip(),
            temperature=temperature,
            max_new_tokens=LIVE_MAX_NEW_TOKENS,
            seed=secrets.randbits(63),
            progress_note=WAITING,
        )
        send_live(generation.pk)
    # Sent at commit (just now, outside a request's transaction): the row says if it failed.
    generation.refresh_from_db(fields=["progress_note", "celery_task_id"])
    return generation


def send_live(live_id: int) -> None:
    """Hand a live generation to the GPU worker once the transaction commits (kept queued, and
    said so, if the task queue does not answer: it is sent again while its member waits)."""
    from generations.tasks import live_generate

    send_on_commit(LiveGeneration, live_id, lambda: live_generate.delay(live_id))


def waiting_too_long(generation: LiveGeneration, *, now: datetime | None = None) -> bool:
    """Still queued after a few seconds: probably no worker (or a busy one)."""
    now = now or timezone.now()
    return (
        generation.status == JobStatus.QUEUED and now - generation.created_at > UNCLAIMED_HINT_AFTER
    )


def give_up_if_stuck(generation: LiveGeneration, *, now: datetime | None = None) -> None:
    """Nobody picked it up for a minute: end it, so a worker that comes up later skips it. Or
    its worker was killed while writing it: end it too, rather than let the page poll for ever
    (a redelivered job skips a generation that is no longer queued)."""
    now = now or timezone.now()
    if generation.status == JobStatus.RUNNING:
        started = generation.started_at
        if started is not None and now - started > RUNNING_GIVE_UP_AFTER:
            LiveGeneration.objects.filter(pk=generation.pk, status=JobStatus.RUNNING).update(
                status=JobStatus.FAILED, error=WORKER_LOST, finished_at=now
            )
            generation.refresh_from_db(fields=["status", "error", "finished_at"])
        return
    waited = now - generation.created_at
    if generation.status != JobStatus.QUEUED or waited < UNCLAIMED_GIVE_UP_AFTER:
        return
    if generation.progress_note == SEND_FAILED:
        error = QUEUE_DOWN
    else:
        error = WORKER_BUSY if _worker_is_busy() else NO_WORKER
    LiveGeneration.objects.filter(pk=generation.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.FAILED, error=error, finished_at=now
    )
    generation.refresh_from_db(fields=["status", "error", "finished_at"])


# ------------------------------------------------------------------------------ on the worker
class _Stream:
    """Collects streamed text and writes it onto the row every few tokens, never a leak."""

    def __init__(self, generation: LiveGeneration, index, speakers: dict[str, Speaker]):
        self.generation = generation
        self.index = index
        self.speakers = speakers
        self.lines: list[dict[str, str]] = []
        self.tokens = 0
        self.pending = 0
        self.last_flush = time.monotonic()
        self.last_cancel_check = time.monotonic()
        self.shared_run = 0
        self.leaked = False
        self.cancelled = False

    def _line(self, slug: str) -> dict[str, str]:
        name = self.speakers[slug].display_name if slug in self.speakers else slug
        return {"speaker": slug, "name": name, "text": ""}

    def on_speaker(self, line: int, slug: str) -> None:
        self.lines.append(self._line(slug))
        self.flush()

    def on_line_token(self, line: int, text: str) -> None:
        if 0 <= line < len(self.lines):
            self.lines[line]["text"] = text
        self.tick()

    def on_message_token(self, slug: str):
        def on_token(_index: int, text: str) -> None:
            if not self.lines:
                self.lines.append(self._line(slug))
            self.lines[0]["text"] = text
            self.tick()

        return on_token

    def tick(self) -> None:
        self.tokens += 1
        self.pending += 1
        if self.pending >= FLUSH_EVERY_TOKENS or time.monotonic() - self.last_flush > FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self.leaked:
            return
        self.pending, self.last_flush = 0, time.monotonic()
        shared = services.longest_shared_run(self.index, [line["text"] for line in self.lines])
        self.shared_run = max(self.shared_run, shared)
        if services.is_leak(shared):
            self.leaked = True  # stop here; this text is never written anywhere
            return
        LiveGeneration.objects.filter(pk=self.generation.pk).update(
            lines=[dict(line) for line in self.lines],
            progress_done=self.tokens,
            longest_shared_run=self.shared_run,
        )

    def should_stop(self) -> bool:
        if self.leaked:
            return True
        if time.monotonic() - self.last_cancel_check > CANCEL_CHECK_EVERY_S:
            self.last_cancel_check = time.monotonic()
            self.cancelled = self.generation.cancel_was_requested()
        return self.cancelled

    def finish(self, pairs: list[tuple[str, str]]) -> None:
        """Write the final lines (as the generator ended them) or end without any."""
        generation = self.generation
        lines = services.make_lines(pairs, self.speakers)
        lines = [line for line in lines if line["text"].strip()]
        shared = services.longest_shared_run(self.index, [line["text"] for line in lines])
        self.shared_run = max(self.shared_run, shared)
        if self.leaked or services.is_leak(shared):
            LiveGeneration.objects.filter(pk=generation.pk).update(
                lines=[], longest_shared_run=self.shared_run
            )
            generation.mark_failed(LEAK_STOPPED)
            return
        LiveGeneration.objects.filter(pk=generation.pk).update(
            lines=lines, progress_done=self.tokens, longest_shared_run=self.shared_run
        )
        generation.lines = lines
        if self.cancelled:
            generation.mark_cancelled()
        elif not lines:
            generation.mark_failed(NOTHING_WRITTEN)
        else:
            generation.mark_succeeded()


def execute_live(live_id: int, *, speaker_ids: list[int] | None = None) -> LiveGeneration:
    """Generate a queued live request, streaming it onto its row. Raises GenerationError.
    ``speaker_ids``: for a request queued before the row kept its friends (older releases)."""
    if not _claim(live_id):
        # Given up on, cancelled, done already, or being written on another message for it (one
        # sent again, a redelivery): a second run would write a second text over the first.
        return LiveGeneration.objects.get(pk=live_id)
    generation = LiveGeneration.objects.select_related("run", "speaker").get(pk=live_id)
    speaker_ids = generation.speaker_ids or speaker_ids or []
    generation.set_progress(0, generation.max_new_tokens, "Writing")
    run = generation.run
    if run is None or not run.checkpoint_dir:
        raise GenerationError("The model this was asked of is gone.")
    generator = services.load_generator(run.checkpoint_dir)
    index = services.leak_index(run)
    speakers = {s.slug: s for s in Speaker.objects.all()}
    banned = services.banned_speaker_slugs(generator.chat_format.speakers)
    params = services.sampling_params(generation)
    stream = _Stream(generation, index, speakers)
    if generation.conversation:
        chosen = {s.slug for s in speakers.values() if s.pk in speaker_ids}
        allowed = sorted((chosen - banned) & set(generator.chat_format.speakers))
        if not allowed:
            raise GenerationError("Everyone picked for this conversation has opted out.")
        conversation = generator.generate_conversation(
            params,
            speakers_allowed=allowed,
            max_lines=services.CONVERSATION_MAX_LINES,
            opening=services.conversation_opening(generation.opening, allowed, generation.seed),
            seed=generation.seed,
            on_speaker=stream.on_speaker,
            on_token=stream.on_line_token,
            should_stop=stream.should_stop,
        )
        pairs = list(conversation.lines)
    else:
        speaker = generation.speaker
        if speaker is None or speaker.opted_out or speaker.slug in banned:
            raise GenerationError("That friend has opted out, so joe does not write as them.")
        if speaker.slug not in generator.chat_format.speakers:
            raise GenerationError(f"The current model does not know {speaker.display_name}.")
        messages = generator.generate_messages(
            [(speaker.slug, generation.opening)],
            params,
            seeds=[generation.seed],
            banned_speakers=banned,
            batch_size=1,
            on_token=stream.on_message_token(speaker.slug),
            should_stop=stream.should_stop,
        )
        pairs = [(m.speaker, m.text) for m in messages]
        if not messages and stream.lines and not stream.leaked:
            pairs = [(speaker.slug, stream.lines[0]["text"])]  # stopped by the member mid-way
    stream.finish(pairs)
    return generation


def _claim(live_id: int) -> bool:
    """Take a queued live generation for this worker, in one locked transaction: of two messages
    for it, only one writes. False: nothing to do.

    A member removed since they asked (their account deactivated) gets nothing written: it
    would be for nobody, in a friend's voice. (A deleted account's requests went with it.)"""
    with transaction.atomic():
        generation = (
            LiveGeneration.objects.select_for_update(of=("self",))
            .select_related("member")
            .filter(pk=live_id)
            .first()
        )
        if generation is None or generation.status != JobStatus.QUEUED:
            return False
        if not generation.member.is_active:
            log.info("Live generation %s: %s", live_id, MEMBER_GONE)
            LiveGeneration.objects.filter(pk=live_id).update(
                status=JobStatus.CANCELLED, progress_note=MEMBER_GONE, finished_at=timezone.now()
            )
            return False
        generation.mark_running()
    return True


# ------------------------------------------------------------------------------ after
def save_to_gallery(*, generation: LiveGeneration, member) -> Snippet:
    """Keep a finished live generation as a snippet (once; saving twice returns the first)."""
    with transaction.atomic():
        generation = (
            LiveGeneration.objects.select_for_update(of=("self",))
            .select_related("run")
            .get(pk=generation.pk)
        )
        if generation.member_id != member.pk:
            raise GenerationError("Only the member who asked for it can save this.")
        if generation.saved_snippet_id:
            return generation.saved_snippet
        if generation.status != JobStatus.SUCCEEDED or not generation.lines:
            raise GenerationError("Only a finished generation can be saved.")
        if generation.run is None:
            raise GenerationError("The model that wrote this is gone, so it cannot be saved.")
        # As a batch drops a message that is only its prompt (services._BatchRunner.keep).
        first, opening = generation.lines[0]["text"], generation.opening
        own = first[len(opening) :] if opening and first.startswith(opening) else first
        if len(own.strip()) < services.MIN_MESSAGE_CHARS:
            raise GenerationError(OPENING_ONLY)
        speakers = {s.slug: s for s in Speaker.objects.all()}
        for line in generation.lines:
            voice = speakers.get(line["speaker"])
            if voice is not None and voice.opted_out:
                raise GenerationError(
                    f"{voice.display_name} has opted out since, so this cannot be saved."
                )
        index = services.leak_index(generation.run)
        shared = services.longest_shared_run(index, [line["text"] for line in generation.lines])
        if services.is_leak(shared):
            raise GenerationError("This repeats a real message word for word; it cannot be saved.")
        snippet = services.create_snippet(
            run=generation.run,
            lines=generation.lines,
            kind=Snippet.Kind.CONVERSATION if generation.conversation else Snippet.Kind.MESSAGE,
            source=Snippet.Source.LIVE,
            seed=generation.seed,
            params=generation,
            prompt=generation.opening,
            shared_run=shared,
            speakers=speakers,
            created_by=member,
        )
        LiveGeneration.objects.filter(pk=generation.pk).update(saved_snippet=snippet)
    return snippet


def bubbles(lines: list[dict[str, str]], speakers: dict[str, Speaker]) -> list[Bubble]:
    """Lines as chat bubbles, in each speaker's colour."""
    out = []
    for line in lines:
        speaker = speakers.get(line.get("speaker", ""))
        name = speaker.display_name if speaker else line.get("name") or "?"
        out.append(
            Bubble(
                name=name,
                text=line.get("text", ""),
                colour=speaker.colour if speaker else "#777777",
                initial=speaker.initial if speaker else (name[:1] or "?").upper(),
            )
        )
    return out
