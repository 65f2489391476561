"""A big Slack import on PostgreSQL, parsed by several worker processes.

A plain import parses and builds every row in the importing process, which then spends as much
CPU as the database backend does (see benchmarks/RESULTS.md, "Ingest"). Here the export's day
files are split among ``ingest.parsers.slack_workers`` processes that each turn their share into
binary COPY bytes, and the importing process only forwards those bytes to the one COPY of the
import's transaction: all or nothing, deduplicated, exactly as the plain import.

For a worker to build a row it needs the row's ids, so ids are settled first: people and
conversations that already exist keep theirs, and the others get ids reserved from their
tables' sequences. Their rows are written at the end, and only for those a message names (as a
plain import creates a person or conversation at its first message); ``Message`` has no
database-level foreign keys, so its rows can come first within the transaction.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from django.conf import settings
from django.db import connection

from ingest.models import Conversation, Identity
from ingest.parsers import slack
from ingest.parsers.archive import open_archive
from ingest.parsers.records import (
    ConversationRecord,
    ExportError,
    IdentityRecord,
    Progress,
)
from ingest.parsers.slack_workers import Job, Summary, Unit, auto_workers
from ingest.rows import clean_id

if TYPE_CHECKING:
    from ingest.progress import ProgressReporter
    from ingest.services import CorpusWriter

log = logging.getLogger(__name__)

UNIT_BYTES = 1 << 20  # a work unit: about this many uncompressed bytes of day files
WORKER_ARGS = ["-m", "ingest.parsers.slack_workers"]  # after the interpreter


@dataclass(slots=True)
class Plan:
    path: str
    include_bots: bool
    identities: list[IdentityRecord]
    conversations: list[ConversationRecord]
    shares: list[list[Unit]]  # one list of units per worker
    files: int


def cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_count() -> int:
    """JOE_INGEST_WORKERS: a number, or "auto" (``auto_workers`` of this machine's cores)."""
    value = str(settings.JOE_INGEST_WORKERS).strip().lower()
    if value != "auto":
        return max(0, int(value))
    return auto_workers(cpu_count())


def plan(path: str | Path, *, include_bots: bool) -> Plan | None:
    """How to split this export among worker processes, or None to parse it in this one (too
    small to be worth the processes' start, no cores to spare, or not PostgreSQL)."""
    workers = worker_count()
    if workers < 1 or connection.vendor != "postgresql":
        return None
    with open_archive(path) as archive:
        _export, identities, conversations, days = slack.layout(archive, include_bots)
        sizes = {m: archive.size(m) for members in days.values() for m in members}
    if sum(sizes.values()) < settings.JOE_INGEST_PARALLEL_MIN_BYTES:
        return None
    # Units of about UNIT_BYTES in reading order, then cut into contiguous shares of about
    # equal size: a conversation is split between two workers at most at a cut, so few of
    # them have their edit events read twice.
    units: list[tuple[Unit, int]] = []
    for conv in conversations:
        members = sorted(days.get(conv.folder, ()))
        start = size = 0
        for i, member in enumerate(members):
            size += sizes[member]
            if size >= UNIT_BYTES or i == len(members) - 1:
                units.append((Unit(conv.folder, start, i + 1), size))
                start, size = i + 1, 0
    total = sum(size for _unit, size in units)
    workers = min(workers, len(units))
    shares: list[list[Unit]] = [[] for _ in range(workers)]
    done = 0
    for unit, size in units:
        share = min(workers - 1, int(done * workers / total)) if total else 0
        shares[share].append(unit)
        done += size
    return Plan(
        path=str(path),
        include_bots=include_bots,
        identities=identities,
        conversations=[
            ConversationRecord(c.external_id, c.title, c.is_group) for c in conversations
        ],
        shares=[s for s in shares if s],
        files=len(sizes),
    )


def write(plan: Plan, writer: CorpusWriter, reporter: ProgressReporter) -> None:
    """Import the plan's export through ``writer`` (inside its transaction, under the import
    lock): the worker processes' rows go to a packed loader, their records to the writer."""
    from ingest.loader import message_loader
    from ingest.services import fewer_collections

    export_id, kind = writer.export.pk, writer.kind
    identity_ids, new_identities = _ids(Identity, kind, [r.external_id for r in plan.identities])
    conversation_ids, new_conversations = _ids(
        Conversation, kind, [r.external_id for r in plan.conversations]
    )
    named: set[str] = set()  # conversations that the records of unlisted senders name
    # Senders users.json does not list: their first announcement in reading order, and the
    # ones that get a new row (at the end, named after that announcement).
    announced: dict[str, tuple[int, IdentityRecord]] = {}
    new_unlisted: set[str] = set()

    def unlisted(external_id: str) -> int:
        loader.pause()
        ids, new = _ids(Identity, kind, [external_id])
        new_unlisted.update(new)
        return ids[external_id]

    writer.identity_records.update({r.external_id: r for r in plan.identities})
    writer.conversation_records.update({r.external_id: r for r in plan.conversations})
    # Records of unlisted senders go through the writer, which must not create a second row
    # for a conversation whose id the workers use: it gets these ids and keeps only the used.
    writer.conversation_ids.update(conversation_ids)
    summaries: list[Summary] = []
    position = Progress(0, plan.files, "files")
    with (
        fewer_collections(),
        message_loader(export_id=export_id, source_kind=kind, packed=True) as loader,
    ):
        writer.loader = loader
        jobs = [
            Job(
                path=plan.path,
                include_bots=plan.include_bots,
                limits=None,
                export_id=export_id,
                kind=kind,
                identity_ids=identity_ids,
                conversation_ids=conversation_ids,
                units=units,
            )
            for units in plan.shares
        ]
        add_packed = loader.add_packed
        reported = 0
        for worker, kind_byte, body in _frames(jobs, reporter):
            if kind_byte == b"D":
                add_packed(memoryview(body)[4:], int.from_bytes(body[:4], "big"))
                if loader.seen - reported >= 5000:
                    reported = loader.seen
                    reporter.messages = loader.seen
                    reporter.report()
            elif kind_byte == b"P":
                position.done += 1
                reporter.parser_progress(position)
            elif kind_byte == b"R":
                records = pickle.loads(body)  # noqa: S301 (our own workers)
                messages = []
                for record in records:
                    if type(record) is IdentityRecord:
                        # Each worker announces a sender at its first message; the first
                        # worker's announcement is the first in reading order, as a plain
                        # parse would have it.
                        if worker < announced.get(record.external_id, (len(jobs), None))[0]:
                            announced[record.external_id] = (worker, record)
                        continue
                    messages.append(record)
                    named.add(record.conversation_id)
                    if record.identity_id not in writer.identity_ids:
                        writer.identity_ids[record.identity_id] = unlisted(record.identity_id)
                writer.take(messages, reporter)
            elif kind_byte == b"S":
                summaries.append(pickle.loads(body))  # noqa: S301
            elif kind_byte == b"E":
                raise ExportError(body.decode("utf-8", "replace"))
        reporter.messages = loader.seen
    if not any(s.records for s in summaries):
        raise ExportError(slack.EMPTY_DAYS.format(name=Path(plan.path).name))
    for s in summaries:
        writer.skipped.update(s.skipped)
        for at in (s.first_at, s.last_at):
            if at is not None:
                writer.first_at = at if writer.first_at is None else min(writer.first_at, at)
                writer.last_at = at if writer.last_at is None else max(writer.last_at, at)
    for external_id in sorted(set().union(*(s.identities for s in summaries))):
        if external_id in new_identities:
            writer.create_identity(external_id, pk=identity_ids[external_id])
        writer.identity_ids[external_id] = identity_ids[external_id]
    for external_id, (_worker, record) in sorted(announced.items()):
        if external_id in new_unlisted:
            writer.identity_records[external_id] = record
    for external_id in sorted(new_unlisted):
        writer.create_identity(external_id, pk=writer.identity_ids[external_id])
    named.update(*(s.conversations for s in summaries))
    for external_id in sorted(named):
        if external_id in new_conversations:
            writer.create_conversation(external_id, pk=conversation_ids[external_id])
    writer.conversation_ids = {e: conversation_ids[e] for e in named}


def _ids(
    model: type[Identity] | type[Conversation], kind: str, external_ids: list[str]
) -> tuple[dict[str, int], set[str]]:
    """external id -> pk: the existing row's, else one reserved from the table's sequence;
    and the external ids that have no row yet."""
    cleaned = {e: clean_id(e) for e in external_ids}  # as the row stores it
    pks = dict(
        model.objects.filter(source_kind=kind, external_id__in=set(cleaned.values())).values_list(
            "external_id", "pk"
        )
    )
    missing = sorted(set(cleaned.values()) - pks.keys())
    if missing:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [model._meta.db_table, len(missing)],
            )
            pks.update(zip(missing, (row[0] for row in cursor.fetchall()), strict=True))
    # Two ids that clean to the same one share its row (the first creates it).
    new = {e for e in external_ids if cleaned[e] in missing}
    return {e: pks[cleaned[e]] for e in external_ids}, new


_END = object()


def _frames(jobs: list[Job], reporter: ProgressReporter) -> Iterator[tuple[int, bytes, bytes]]:
    """Every frame the workers write, as they come (worker, type, body); the workers are
    stopped however this ends.

    One thread per worker reads its pipe into a bounded queue (so a fast worker waits instead
    of filling memory); waiting on the queue wakes twice a second to let a cancel through."""
    frames: queue.Queue = queue.Queue(maxsize=8 * len(jobs))
    with _workers(jobs) as processes:
        readers = [
            threading.Thread(target=_read, args=(i, p.stdout, frames), daemon=True)
            for i, (p, _log) in enumerate(processes)
        ]
        for thread in readers:
            thread.start()
        running = len(readers)
        try:
            while running:
                try:
                    item = frames.get(timeout=0.5)
                except queue.Empty:
                    reporter.report()
                    continue
                if item is _END:
                    running -= 1
                    continue
                yield item
        finally:
            # Stopped early (bad input, a cancel, an error here): stop the workers and drain
            # the queue, so that no reader thread stays blocked on it.
            for process, _errors in processes:
                if process.poll() is None:
                    process.kill()
            while running:
                if frames.get() is _END:
                    running -= 1
            for thread in readers:
                thread.join()
        for process, errors in processes:
            if process.wait() != 0:
                errors.seek(0)
                tail = errors.read().decode("utf-8", "replace").strip().splitlines()[-5:]
                log.error("Slack import: a worker process failed: %s", "\n".join(tail))
                raise RuntimeError(
                    f"a Slack worker process stopped (exit status {process.returncode})"
                )


def _read(worker: int, stream: IO[bytes], frames: queue.Queue) -> None:
    try:
        while len(header := stream.read(5)) == 5:  # a cut-off frame: the worker died
            length = int.from_bytes(header[1:], "big")
            frames.put((worker, header[:1], stream.read(length) if length else b""))
    except (OSError, ValueError):  # the pipe was closed under us: the import is over
        pass
    finally:
        frames.put(_END)


@contextmanager
def _workers(jobs: list[Job]) -> Iterator[list[tuple[subprocess.Popen, IO[bytes]]]]:
    if not sys.executable:
        raise OSError("no Python interpreter to start")
    root = str(Path(__file__).resolve().parents[1])  # the folder holding "ingest"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    processes: list[tuple[subprocess.Popen, IO[bytes]]] = []
    try:
        for job in jobs:
            errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, *WORKER_ARGS],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
            )
            processes.append((process, errors))
            assert process.stdin is not None
            with suppress(BrokenPipeError):
                process.stdin.write(pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
                process.stdin.close()
        yield processes
    finally:
        for process, errors in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout is not None:
                with suppress(OSError):
                    process.stdout.close()
            errors.close()
