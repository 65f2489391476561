"""Generation writes: the leak index beside a checkpoint, batches of snippets, and regenerating one.

The model is imported lazily (torch is heavy and the web process never samples); the worker keeps
the last loaded checkpoint and leak index in memory between jobs.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from generations.leak_guard import LeakIndex
from generations.models import GenerationBatch, Snippet, SnippetStatus
from generations.near_duplicates import NearDuplicateFilter
from ingest.models import Message, Speaker
from joe_site.jobs import ACTIVE_STATUSES, JobStatus
from joe_site.lost_messages import send_on_commit
from trainer.models import TrainingRun

if TYPE_CHECKING:
    from generations.sampling import Generator, SamplingParams

LEAK_INDEX_FILE = "leak_index.npz"
LEAK_REASON = "verbatim leak"
NEAR_DUPLICATE_THRESHOLD = 0.8
MIN_MESSAGE_CHARS = 2
CONVERSATION_MAX_LINES = 8
MAX_ROWS_PER_CHUNK = 32  # rows decoded together; every chunk has exactly this many (see below)
MAX_TRIES_PER_SNIPPET = 4  # give up on a quota after this many candidates per wanted snippet
_CONVERSATION_SALT = 0x5EED_C0DE
COUNTS = ("generated", "kept", "too_short", "near_duplicate", "leak", "spare")


class GenerationError(Exception):
    """Generation cannot go ahead; the message is meant for the page (and the job's row)."""


# ------------------------------------------------------------------------------ model and index
_generators: dict[str, Generator] = {}
_leak_indexes: dict[Path, tuple[float, LeakIndex]] = {}


def load_generator(checkpoint_dir: str) -> Generator:
    """The checkpoint's generator, kept loaded for the next job (one at a time: memory)."""
    if checkpoint_dir not in _generators:
        from generations.sampling import Generator

        if not Path(checkpoint_dir).is_dir():
            raise GenerationError(f"The model files are missing: {checkpoint_dir} is not there.")
        _generators.clear()
        _generators[checkpoint_dir] = Generator.load(checkpoint_dir)
    return _generators[checkpoint_dir]


def sampling_params(obj: Any) -> SamplingParams:
    """SamplingParams from anything with the four sampling fields (a batch, snippet, live row)."""
    from generations.sampling import SamplingParams

    return SamplingParams(
        temperature=obj.temperature,
        top_p=obj.top_p,
        top_k=obj.top_k,
        max_new_tokens=obj.max_new_tokens,
    )


def _training_texts(run: TrainingRun) -> Iterator[str]:
    """Every message the run could have learned, opted out or not: an opt-out after training
    does not take the messages out of the weights, so the guard must still know them."""
    messages = Message.objects.filter(identity__speaker__isnull=False)
    if run.speaker_ids:
        # Their messages may have moved since (a merge, a split, an identity moved): to the
        # speakers that remember those ids.
        trained = set(run.speaker_ids)
        holders = [
            pk
            for pk, former in Speaker.objects.values_list("pk", "former_ids")
            if pk in trained or trained.intersection(former)
        ]
        messages = messages.filter(identity__speaker_id__in=holders)
    return messages.values_list("text", flat=True).iterator(chunk_size=5000)


def leak_index_path(run: TrainingRun) -> Path:
    return Path(run.checkpoint_dir) / LEAK_INDEX_FILE


def build_leak_index(run: TrainingRun) -> LeakIndex:
    """Index the run's training messages and save it beside the checkpoint (atomically)."""
    threshold = settings.JOE_LEAK_THRESHOLD
    index = LeakIndex.build(_training_texts(run), n=8, min_n=max(1, min(4, threshold)))
    path = leak_index_path(run)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    index.save(tmp)
    os.replace(tmp, path)
    _leak_indexes[path] = (path.stat().st_mtime, index)
    return index


def leak_index(run: TrainingRun) -> LeakIndex:
    """The run's leak index: loaded from beside the checkpoint, built there first if missing."""
    path = leak_index_path(run)
    if not path.is_file():
        return build_leak_index(run)
    mtime = path.stat().st_mtime
    cached = _leak_indexes.get(path)
    if cached is None or cached[0] != mtime:
        cached = (mtime, LeakIndex.load(path))
        _leak_indexes[path] = cached
    if cached[1].min_n > settings.JOE_LEAK_THRESHOLD:
        # JOE_LEAK_THRESHOLD was lowered below the shortest run this index reports: built
        # again for it, or shorter copies would pass unseen.
        return build_leak_index(run)
    return cached[1]


def longest_shared_run(index: LeakIndex, texts: Sequence[str]) -> int:
    """The longest run any one line shares with one training message (lines checked apart)."""
    return max(index.longest_shared_runs(list(texts)), default=0)


def is_leak(shared_run: int) -> bool:
    return shared_run >= settings.JOE_LEAK_THRESHOLD


# ------------------------------------------------------------------------------ snippets
def banned_speaker_slugs(known: Iterable[str]) -> set[str]:
    """Of the voices a model knows, those joe must not write in: friends who opted out, and
    voices no speaker holds any more (merged into another speaker, perhaps one who opted out:
    no one could veto a line in a voice that is nobody's)."""
    known = set(known)
    allowed = Speaker.objects.filter(slug__in=known, opted_out=False)
    return known - set(allowed.values_list("slug", flat=True))


def conversation_voices(known: Iterable[str]) -> list[str]:
    """The voices a batch conversation may write in: those the model knows that joe may write
    in (``banned_speaker_slugs``)."""
    known = set(known)
    return sorted(known - banned_speaker_slugs(known))


def create_snippet(
    *,
    run: TrainingRun,
    lines: list[dict[str, str]],
    kind: str,
    source: str,
    seed: int,
    params: Any,
    prompt: str,
    shared_run: int,
    speakers: dict[str, Speaker],
    batch: GenerationBatch | None = None,
    created_by=None,
) -> Snippet:
    """Store one generated snippet with everything needed to regenerate it. A verbatim leak is
    kept for staff to see but hidden from members; otherwise published or sent to triage."""
    leak = is_leak(shared_run)
    if leak:
        status = SnippetStatus.HIDDEN
    elif settings.JOE_CURATE_BEFORE_PUBLISH:
        status = SnippetStatus.TRIAGE
    else:
        status = SnippetStatus.PUBLISHED
    voices = [speakers[line["speaker"]] for line in lines if line["speaker"] in speakers]
    snippet = Snippet.objects.create(
        kind=kind,
        source=source,
        batch=batch,
        run=run,
        created_by=created_by,
        speaker=voices[0] if voices else None,
        lines=lines,
        text="\n".join(line["text"] for line in lines),
        prompt=prompt,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        max_new_tokens=params.max_new_tokens,
        seed=seed,
        longest_shared_run=shared_run,
        is_leak=leak,
        status=status,
        hidden_reason=LEAK_REASON if leak else "",
        published_at=timezone.now() if status == SnippetStatus.PUBLISHED else None,
    )
    snippet.speakers.set(list(dict.fromkeys(voices)))
    return snippet


def make_lines(pairs: Iterable[tuple[str, str]], speakers: dict[str, Speaker]) -> list[dict]:
    """[(slug, text)] as stored lines, with each voice's display name at the time."""
    return [
        {"speaker": slug, "name": speakers[slug].display_name if slug in speakers else slug,
         "text": text}
        for slug, text in pairs
    ]  # fmt: skip


# ------------------------------------------------------------------------------ batches
def _usable_run(run: TrainingRun) -> None:
    if run.status != JobStatus.SUCCEEDED or not run.checkpoint_dir:
        raise GenerationError(f"{run} has no finished model to generate from.")


def create_batch(
    *,
    run: TrainingRun,
    per_speaker: dict[str, int],
    conversations: int,
    temperature: float,
    top_p: float,
    top_k: int,
    max_new_tokens: int,
    prompt: str,
    base_seed: int,
    created_by=None,
) -> GenerationBatch:
    """Check a batch request and store it as queued; nothing runs yet."""
    _usable_run(run)
    per_speaker = {slug: int(n) for slug, n in per_speaker.items() if n and int(n) > 0}
    speakers = Speaker.objects.in_bulk(list(per_speaker), field_name="slug")
    for slug in per_speaker:
        speaker = speakers.get(slug)
        if speaker is None:
            raise GenerationError(f"There is no speaker called {slug!r}.")
        if speaker.opted_out:
            raise GenerationError(
                f"{speaker.display_name} has opted out, so joe does not write in their voice."
            )
        if run.speaker_ids and speaker.pk not in run.speaker_ids:
            raise GenerationError(f"{run} was not trained on {speaker.display_name}'s messages.")
    if not per_speaker and conversations <= 0:
        raise GenerationError("Ask for at least one message or one conversation.")
    total = sum(per_speaker.values()) + conversations
    return GenerationBatch.objects.create(
        run=run,
        created_by=created_by,
        per_speaker=per_speaker,
        conversations=conversations,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        max_new_tokens=max_new_tokens,
        prompt=prompt.strip(),
        base_seed=base_seed,
        progress_total=total,
        progress_note="Waiting for the generation worker",
    )


def start_batch(**kwargs: Any) -> GenerationBatch:
    """create_batch, then queue it for the GPU worker once the row is committed."""
    with transaction.atomic():
        batch = create_batch(**kwargs)
        send_batch(batch.pk)
    return batch


def send_batch(batch_id: int) -> None:
    """Hand the batch to the GPU worker once the transaction commits (kept queued, and said so,
    if the task queue does not answer: it is sent again later)."""
    from generations.tasks import run_batch

    send_on_commit(GenerationBatch, batch_id, lambda: run_batch.delay(batch_id))


def chunk_rows(per_speaker: dict[str, int]) -> int:
    """Rows per decoding chunk. Every chunk of a batch has exactly this many rows: a row's numbers
    depend on its batch's shape, and a fixed shape is what lets `regenerate` redo one exactly."""
    return max(1, min(MAX_ROWS_PER_CHUNK, sum(per_speaker.values())))


def message_seed(base_seed: int, index: int) -> int:
    from generations.sampling import derive_seed

    return derive_seed(base_seed, index)


def conversation_seed(base_seed: int, index: int) -> int:
    from generations.sampling import derive_seed

    return derive_seed(base_seed ^ _CONVERSATION_SALT, index)


@dataclass
class _Candidate:
    pairs: list[tuple[str, str]]
    seed: int
    kind: str
    opening: str = ""  # the batch's prompt, which the first line starts with (not the model's)
    completion: str | None = None  # what the model added to the first line, where it is known


class _BatchRunner:
    """One pass of a batch: fills each quota with kept snippets, chunk by chunk, resumable."""

    def __init__(self, batch: GenerationBatch, on_progress: Callable[[int, int], None] | None):
        self.batch = batch
        self.run = batch.run
        self.on_progress = on_progress
        self.generator = load_generator(self.run.checkpoint_dir)
        self.index = leak_index(self.run)
        self.params = sampling_params(batch)
        self.speakers = {s.slug: s for s in Speaker.objects.all()}
        self.banned = banned_speaker_slugs(self.generator.chat_format.speakers)
        saved = dict(batch.stats or {})
        # Public counts (generated, kept, too_short, near_duplicate, leak, spare) and, apart, where
        # a redelivered job resumes: the next seed indexes and the tries per quota.
        self.cursor: dict[str, Any] = {"next_message": 0, "next_conversation": 0, "tries": {}}
        self.cursor.update(saved.pop("cursor", {}))
        self.tries: Counter[str] = Counter(self.cursor["tries"])
        self.stats: Counter[str] = Counter(
            {k: v for k, v in saved.items() if k in COUNTS and isinstance(v, int)}
        )
        self.rows = chunk_rows(batch.per_speaker)
        # A redelivered job carries on where it stopped: what is already stored counts.
        kept = (
            batch.snippets.filter(kind=Snippet.Kind.MESSAGE, is_leak=False)
            .values_list("speaker__slug")
            .annotate(n=Count("pk"))
        )
        self.kept: Counter[str] = Counter(dict(kept))
        self.kept_conversations = batch.snippets.filter(
            kind=Snippet.Kind.CONVERSATION, is_leak=False
        ).count()
        self.given_up: set[str] = set()
        self.opted_out: set[str] = set()  # quotas dropped: the friend opted out while it ran
        self.filter = NearDuplicateFilter(
            Snippet.objects.exclude(text="").values_list("text", flat=True).iterator(),
            NEAR_DUPLICATE_THRESHOLD,
        )

    # -------------------------------------------------------------- bookkeeping
    def done(self) -> int:
        quotas = self.batch.per_speaker
        messages = sum(
            quotas[s] if s in self.given_up | self.opted_out else min(self.kept[s], quotas[s])
            for s in quotas
        )
        conversations = (
            self.batch.conversations
            if "conversations" in self.given_up
            else min(self.kept_conversations, self.batch.conversations)
        )
        return messages + conversations

    def report(self, note: str) -> None:
        self.cursor["tries"] = dict(self.tries)
        stats = {key: self.stats[key] for key in COUNTS}
        stats.update(rows_per_chunk=self.rows, cursor=self.cursor)
        now = timezone.now()
        GenerationBatch.objects.filter(pk=self.batch.pk).update(stats=stats, heartbeat_at=now)
        self.batch.stats = stats
        self.batch.set_progress(self.done(), self.batch.progress_total, note)
        if self.on_progress is not None:
            self.on_progress(self.done(), self.batch.progress_total)

    def keep(self, candidate: _Candidate) -> bool:
        """Filter one candidate and store it if it passes (leaks are stored hidden)."""
        self.stats["generated"] += 1
        texts = [text for _, text in candidate.pairs]
        # What the model wrote: a first line that is only the prompt said nothing of its own.
        own = list(texts)
        if candidate.completion is not None:
            own[0] = candidate.completion
        elif candidate.opening and own and own[0].startswith(candidate.opening):
            own[0] = own[0][len(candidate.opening) :]
        long_enough = [t for t in own if len(t.strip()) >= MIN_MESSAGE_CHARS]
        minimum_lines = 2 if candidate.kind == Snippet.Kind.CONVERSATION else 1
        if len(long_enough) < minimum_lines or len(long_enough) < len(texts):
            self.stats["too_short"] += 1
            return False
        whole = "\n".join(texts)
        if self.filter.is_duplicate(whole):
            self.stats["near_duplicate"] += 1
            return False
        self.filter.add(whole)  # a leak too: the same leak twice is not worth a second row
        shared = longest_shared_run(self.index, texts)
        create_snippet(
            run=self.run,
            batch=self.batch,
            lines=make_lines(candidate.pairs, self.speakers),
            kind=candidate.kind,
            source=Snippet.Source.BATCH,
            seed=candidate.seed,
            params=self.params,
            prompt=self.batch.prompt,
            shared_run=shared,
            speakers=self.speakers,
            created_by=self.creator(),
        )
        if is_leak(shared):
            self.stats["leak"] += 1
            return False
        self.stats["kept"] += 1
        return True

    def creator(self):
        """Who queued the batch, as its row says now: a staff member whose account is deleted
        while it runs leaves it nobody's (SET_NULL), and so are the snippets it keeps writing
        (naming the deleted account, the next one failed the batch on the foreign key)."""
        creator_id = self.batch.created_by_id
        if creator_id is None:
            return None
        if not GenerationBatch.objects.filter(pk=self.batch.pk, created_by_id=creator_id).exists():
            self.batch.created_by = None
        return self.batch.created_by

    # -------------------------------------------------------------- messages
    def deficits(self) -> dict[str, int]:
        return {
            slug: want - self.kept[slug]
            for slug, want in self.batch.per_speaker.items()
            if self.kept[slug] < want and slug not in self.given_up | self.opted_out
        }

    def drop_opted_out(self) -> bool:
        """Whether a friend with a quota here opted out since the last look: not one more
        message in their voice (opting out promises that nobody generates it)."""
        self.banned = banned_speaker_slugs(self.generator.chat_format.speakers)
        newly = (set(self.batch.per_speaker) & self.banned) - self.opted_out
        self.opted_out |= newly
        return bool(newly)

    def next_requests(self, rows: int) -> list[str]:
        """Speakers for the next round: every missing snippet once, topped up round-robin to a
        whole number of chunks, so no chunk is short."""
        short = self.deficits()
        for slug in list(short):
            tries = self.tries[slug]
            if tries >= MAX_TRIES_PER_SNIPPET * self.batch.per_speaker[slug] + rows:
                self.given_up.add(slug)
                del short[slug]
        order = [slug for slug, n in short.items() for _ in range(n)]
        if not order:
            return []
        slugs = list(short)
        i = 0
        while len(order) % rows:
            order.append(slugs[i % len(slugs)])
            i += 1
        return order

    def generate_messages(self) -> bool:
        """Fill the per-speaker quotas; False if cancelled."""
        rows = self.rows
        unknown = set(self.batch.per_speaker) - set(self.generator.chat_format.speakers)
        if unknown:
            names = ", ".join(sorted(unknown))
            raise GenerationError(f"This model does not know these speakers: {names}.")
        opening = self.batch.prompt
        while order := self.next_requests(rows):
            for start in range(0, len(order), rows):
                if self.batch.cancel_was_requested():
                    return False
                if self.drop_opted_out():
                    break  # the round planned again without them
                chunk = order[start : start + rows]
                first = self.cursor["next_message"]
                seeds = [message_seed(self.batch.base_seed, first + i) for i in range(rows)]
                self.cursor["next_message"] += rows
                results = self.generator.generate_messages(
                    [(slug, opening) for slug in chunk],
                    self.params,
                    seeds=seeds,
                    banned_speakers=self.banned,
                    batch_size=rows,
                )
                for result in results:
                    self.tries[result.speaker] += 1
                    if self.kept[result.speaker] >= self.batch.per_speaker[result.speaker]:
                        self.stats["spare"] += 1  # topping up the chunk; quota already full
                        continue
                    candidate = _Candidate(
                        [(result.speaker, result.text)],
                        result.seed,
                        "message",
                        completion=result.completion,
                    )
                    if self.keep(candidate):
                        self.kept[result.speaker] += 1
                self.report(f"Messages: {sum(self.kept.values())} kept")
        return True

    # -------------------------------------------------------------- conversations
    def conversation_speakers(self) -> list[str]:
        allowed = conversation_voices(self.generator.chat_format.speakers)
        if not allowed:
            raise GenerationError("Every speaker this model knows has opted out.")
        return allowed

    def generate_conversations(self) -> bool:
        if self.batch.conversations <= 0:
            return True
        budget = MAX_TRIES_PER_SNIPPET * self.batch.conversations
        while self.kept_conversations < self.batch.conversations:
            if self.tries["conversations"] >= budget:
                self.given_up.add("conversations")
                break
            if self.batch.cancel_was_requested():
                return False
            allowed = self.conversation_speakers()  # each time: a friend may opt out meanwhile
            index = self.cursor["next_conversation"]
            self.cursor["next_conversation"] += 1
            self.tries["conversations"] += 1
            seed = conversation_seed(self.batch.base_seed, index)
            conversation = self.generator.generate_conversation(
                self.params,
                speakers_allowed=allowed,
                max_lines=CONVERSATION_MAX_LINES,
                opening=conversation_opening(self.batch.prompt, allowed, seed),
                seed=seed,
            )
            candidate = _Candidate(
                list(conversation.lines), seed, "conversation", self.batch.prompt
            )
            if self.keep(candidate):
                self.kept_conversations += 1
            self.report(f"Conversations: {self.kept_conversations} kept")
        return True


def conversation_opening(prompt: str, allowed: Sequence[str], seed: int) -> tuple[str, str] | None:
    """A prompt starts the first line of a conversation, in a voice picked by the seed."""
    if not prompt:
        return None
    return random.Random(seed).choice(sorted(allowed)), prompt


def execute_batch(
    batch_id: int,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    worker_host: str = "",
) -> GenerationBatch:
    """Run a queued batch to the end (or to a cancel), storing snippets as they pass the filters.

    Raises GenerationError with a sentence for the page; the caller records it on the row.
    """
    if not _claim(batch_id, worker_host):
        # Finished, failed or cancelled already: running twice adds nothing.
        return GenerationBatch.objects.select_related("run", "created_by").get(pk=batch_id)
    batch = GenerationBatch.objects.select_related("run", "created_by").get(pk=batch_id)
    _usable_run(batch.run)
    batch.set_progress(0, batch.progress_total, "Loading the model")
    runner = _BatchRunner(batch, on_progress)
    runner.report("Generating")
    finished = runner.generate_messages() and runner.generate_conversations()
    if not finished:
        runner.report("Cancelled; what was kept stays")
        batch.mark_cancelled()
        return batch
    note = "Done"
    if runner.given_up:
        names = ", ".join(sorted(runner.given_up))
        note = f"Done; gave up on filling {names} after too many filtered tries"
    if runner.opted_out:
        note += (
            f"; stopped writing as {', '.join(sorted(runner.opted_out))}, who opted out meanwhile"
        )
    runner.report(note)
    batch.mark_succeeded()
    return batch


class BatchBusy(Exception):
    """Another worker reported on the batch within HEARTBEAT_STALE: it is generating it (a
    second message for the same batch), or was killed a moment ago. The task looks again once
    that worker's heartbeat would be stale (tasks.run_batch)."""


def _claim(batch_id: int, worker_host: str) -> bool:
    """Take the batch for this worker, in one locked transaction: two messages for one batch
    (a message sent again, a redelivery) must not both generate. False: nothing to do."""
    now = timezone.now()
    with transaction.atomic():
        batch = GenerationBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status not in ACTIVE_STATUSES:
            return False
        if batch.held_by_another(worker_host, now):
            raise BatchBusy(f"Batch {batch_id} is held by {batch.worker_host}")
        GenerationBatch.objects.filter(pk=batch_id).update(
            status=JobStatus.RUNNING,
            started_at=batch.started_at or now,
            error="",
            worker_host=worker_host,
            heartbeat_at=now,
        )
    return True


WORKER_STOPPED = "Cancelled: its worker had stopped; what it kept stays"


def cancel_batch(batch: GenerationBatch) -> None:
    """Ask the worker to stop the batch; one whose worker went silent is cancelled at once (it
    would otherwise stay running until the broker hands the job out again, a day later)."""
    batch.request_cancel()
    batch.refresh_from_db(fields=["heartbeat_at"])
    if batch.worker_silent:
        GenerationBatch.objects.filter(pk=batch.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(), progress_note=WORKER_STOPPED
        )
        batch.refresh_from_db()


def requeue_lost_batches(*, worker_host: str) -> list[int]:
    """Queue again the batches a killed worker of this name left running (called when a worker
    starts: under the same name, it cannot still be generating them). Each carries on where it
    stopped; one that staff asked to cancel meanwhile is cancelled now."""
    with transaction.atomic():
        lost = GenerationBatch.objects.select_for_update().filter(
            status=JobStatus.RUNNING, worker_host=worker_host
        )
        lost.filter(cancel_requested=True).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(), progress_note=WORKER_STOPPED
        )
        requeued = list(lost.order_by("pk").values_list("pk", "progress_done", "progress_total"))
        for pk, done, total in requeued:
            GenerationBatch.objects.filter(pk=pk).update(
                status=JobStatus.QUEUED,
                progress_note=f"The worker stopped at {done} of {total}; waiting to go on",
            )
            send_batch(pk)
    return [pk for pk, _, _ in requeued]


# ------------------------------------------------------------------------------ regenerate
def regenerate(snippet: Snippet) -> str:
    """Generate a stored snippet again from its params and seed: the same text, when run on the
    same kind of device with the same speakers allowed."""
    from generations.sampling import GeneratedMessage, Replay

    run = snippet.run
    if run is None:
        raise GenerationError("This snippet's training run is gone, so it cannot be regenerated.")
    generator = load_generator(run.checkpoint_dir)
    params = sampling_params(snippet)
    if snippet.kind == Snippet.Kind.CONVERSATION:
        allowed = _conversation_speakers_for(snippet, generator)
        first = snippet.lines[0]["speaker"] if snippet.lines else ""
        opening = (first, snippet.prompt) if snippet.prompt and first else None
        conversation = generator.generate_conversation(
            params,
            speakers_allowed=allowed,
            max_lines=CONVERSATION_MAX_LINES,
            opening=opening,
            seed=snippet.seed,
        )
        return "\n".join(text for _, text in conversation.lines)
    slug = snippet.lines[0]["speaker"] if snippet.lines else snippet.speaker.slug
    rows = (snippet.batch.stats or {}).get("rows_per_chunk", 1) if snippet.batch else 1
    width = len(generator.encode(generator.chat_format.prompt(slug, snippet.prompt))) + 1
    stored = GeneratedMessage(
        index=0,
        speaker=slug,
        opening=snippet.prompt,
        text=snippet.text,
        completion="",
        seed=snippet.seed,
        params=params,
        n_tokens=0,
        stop_reason="",
        replay=Replay(batch_size=rows, prompt_width=width, row=0),
    )
    return generator.regenerate(stored).text


def _conversation_speakers_for(snippet: Snippet, generator: Generator) -> list[str]:
    """The voices the model could pick from when the snippet was made. A batch allowed every
    speaker not opted out (conversation_voices); a live conversation, the voices in it."""
    known = set(generator.chat_format.speakers)
    if snippet.source == Snippet.Source.LIVE:
        return sorted({line["speaker"] for line in snippet.lines} & known)
    return conversation_voices(known)


def seed_in_range(seed: int) -> int:
    """Seeds are stored in a signed 64-bit column."""
    return int(seed) % (2**63 - 1)


__all__ = [
    "GenerationError",
    "create_batch",
    "execute_batch",
    "leak_index",
    "regenerate",
    "start_batch",
]
