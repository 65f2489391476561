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

One difference remains: when the same message (one ts in one conversation) sits in two day
files that different workers read, the copy kept is the one whose worker gets to it first; a
plain import keeps the first in reading order. (Within a worker, reading order is kept.) Such
copies are rare and, from Slack, identical.
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
    """JOE_INGEST_WORKERS: a number, or "auto" (``auto_workers`` of this machine's cores; also
    what an empty or unreadable value means)."""
    value = str(settings.JOE_INGEST_WORKERS).strip().lower() or "auto"
    if value != "auto":
        try:
            return max(0, int(value))
        except ValueError:
            log.warning("JOE_INGEST_WORKERS=%r is not a number or 'auto': using 'auto'", value)
    return auto_workers(cpu_count())


def plan(path: str | Path, *, include_bots: bool) -> Plan | None:
    """How to split this export among worker processes, or None to parse it in this one (too
    small to be worth the processes' start, no cores to spare, or not PostgreSQL)."""
    if connection.vendor != "postgresql":
        return None
    workers = worker_count()
    if workers < 1:
        return None
    with open_archive(path) as archive:
        # The size first (the zip's directory alone): a small export is parsed as usual, without
        # reading its users and channels twice.
        sizes = {m: archive.size(m) for m in slack.day_files(archive)}
        if sum(sizes.values()) < settings.JOE_INGEST_PARALLEL_MIN_BYTES:
            return None
        _export, identities, conversations, days = slack.layout(archive, include_bots)
    # Units of about UNIT_BYTES in reading order, then cut into contiguous shares of about
    # equal size: a conversation is split between two workers at most at a cut, so few of
    # them have their edit events read twice.
    units: list[tuple[Unit, int]] = []
    for index, conv in enumerate(conversations):
        members = sorted(days.get(conv.folder, ()))
        start = size = 0
        for i, member in enumerate(members):
            size += sizes[member]
            if size >= UNIT_BYTES or i == len(members) - 1:
                units.append((Unit(index, start, i + 1), size))
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
        files=sum(unit.stop - unit.start for unit, _size in units),
    )


def write(plan: Plan, writer: CorpusWriter, reporter: ProgressReporter) -> None:
    """Import the plan's export through ``writer`` (inside its transaction, under the import
    lock): the worker processes' rows go to a packed loader, their records to the writer."""
    from ingest.loader import message_loader
    from ingest.services import ERASED, erased, erased_speaker_names, fewer_collections

    export_id, kind = writer.export.pk, writer.kind
    identity_ids, new_identities = _ids(Identity, kind, [r.external_id for r in plan.identities])
    conversation_ids, new_conversations = _ids(
        Conversation, kind, [r.external_id for r in plan.conversations]
    )
    # People who deleted their messages: the workers leave those to the importer (they come
    # back as records), whose writer skips them.
    gone = erased(identity_ids.values())
    if gone:
        writer.identity_ids.update({e: ERASED for e, pk in identity_ids.items() if pk in gone})
        identity_ids = {e: pk for e, pk in identity_ids.items() if pk not in gone}
    # New people named like a friend who deleted their messages may become that friend, whose
    # later accounts are skipped too: the writer creates these when their first message comes
    # (and knows then), so the workers leave them to it as well.
    erased_names = erased_speaker_names()
    suspects = {
        r.external_id
        for r in plan.identities
        if r.external_id in new_identities and r.display_name.strip().lower() in erased_names
    }
    identity_ids = {e: pk for e, pk in identity_ids.items() if e not in suspects}
    writer.identity_records.update({r.external_id: r for r in plan.identities})
    writer.conversation_records.update({r.external_id: r for r in plan.conversations})
    # Records of unlisted senders go through the writer, which must not create a second row
    # for a conversation whose id the workers use: it gets these ids and keeps only the used.
    writer.conversation_ids.update(conversation_ids)
    # One pk per stored (cleaned) external id: ids that clean alike share a row, as they do in
    # a plain import; the new ones get their rows at the end.
    pk_of = {clean_id(e): pk for e, pk in identity_ids.items()}
    new_rows = {clean_id(e) for e in new_identities}
    named: set[str] = set()  # conversations that the records of unlisted senders name
    # Senders users.json does not list: their first announcement in reading order (each worker
    # announces a sender at its own first message of theirs; the lowest worker's comes first).
    announced: dict[str, tuple[int, IdentityRecord]] = {}
    summaries: dict[int, Summary] = {}
    errors: dict[int, str] = {}
    position = Progress(0, plan.files, "files")

    def unlisted(external_id: str) -> int:
        cleaned = clean_id(external_id)
        if cleaned not in pk_of:
            loader.pause()
            ids, new = _ids(Identity, kind, [external_id])
            pk_of[cleaned] = ERASED if erased(ids.values()) else ids[external_id]
            new_rows.update(clean_id(e) for e in new)
        return pk_of[cleaned]

    def take_records(worker: int, records: list) -> None:
        messages = []
        for record in records:
            if type(record) is IdentityRecord:
                if worker < announced.get(record.external_id, (len(plan.shares), None))[0]:
                    announced[record.external_id] = (worker, record)
                continue
            messages.append(record)
            named.add(record.conversation_id)
            sender = record.identity_id
            if sender not in writer.identity_ids and sender not in suspects:
                first = announced.get(sender)
                if first is not None and first[1].display_name.strip().lower() in erased_names:
                    suspects.add(sender)  # the writer creates them, as for a listed suspect
                    writer.identity_records[sender] = first[1]
                else:
                    writer.identity_ids[sender] = unlisted(sender)
        writer.take(messages, reporter)

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
            if kind_byte in (b"S", b"E"):
                if kind_byte == b"S":
                    summaries[worker] = pickle.loads(body)  # noqa: S301 (our own workers)
                else:
                    errors[worker] = body.decode("utf-8", "replace")
                if errors:
                    # The first bad file in reading order, as a plain parse would report it:
                    # once every share before the failed one has ended without an error.
                    first = min(errors)
                    if all(w in summaries or w in errors for w in range(first)):
                        raise ExportError(errors[first])
            elif errors:
                # The import is lost; only the earlier shares' ends matter now (a cancel too).
                reporter.report()
            elif kind_byte == b"M":
                for segment in pickle.loads(body):  # noqa: S301 (our own workers)
                    if type(segment) is tuple:
                        add_packed(*segment)
                    else:
                        take_records(worker, segment)
                if loader.seen - reported >= 5000:
                    reported = loader.seen
                    reporter.messages = loader.seen
                    reporter.report()
            elif kind_byte == b"P":
                position.done += 1
                reporter.parser_progress(position)
        reporter.messages = loader.seen
    if not any(s.records for s in summaries.values()):
        raise ExportError(slack.EMPTY_DAYS.format(name=Path(plan.path).name))
    # People in the order of their first message (the shares are in reading order), as a
    # plain import creates them: the first of two alike names names their shared speaker.
    senders: dict[str, None] = {}
    for worker in sorted(summaries):
        s = summaries[worker]
        writer.skipped.update(s.skipped)
        for at in (s.first_at, s.last_at):
            if at is not None:
                writer.first_at = at if writer.first_at is None else min(writer.first_at, at)
                writer.last_at = at if writer.last_at is None else max(writer.last_at, at)
        senders.update(s.senders)
        named.update(s.conversations)
    for external_id, (_worker, record) in announced.items():
        writer.identity_records[external_id] = record
    for external_id in senders:
        if external_id in suspects or writer.identity_ids.get(external_id) == ERASED:
            continue  # the writer made their row, or skipped their messages
        cleaned = clean_id(external_id)
        if cleaned in new_rows:  # the first of ids alike makes the row
            writer.create_identity(external_id, pk=pk_of[cleaned])
            new_rows.discard(cleaned)
        writer.identity_ids[external_id] = pk_of[cleaned]
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


_END = b"end"  # a reader's last item: its worker's output ended (not a frame type)


def _frames(jobs: list[Job], reporter: ProgressReporter) -> Iterator[tuple[int, bytes, bytes]]:
    """Every frame the workers write, as they come (worker, type, body); the workers are
    stopped however this ends. A worker whose output ends without its summary or error frame
    died: that fails the import at once, with its stderr in the log.

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
        ended: set[int] = set()  # workers that sent their last frame (S or E)
        try:
            while running:
                try:
                    item = frames.get(timeout=0.5)
                except queue.Empty:
                    reporter.report()
                    continue
                if item[1] is _END:
                    running -= 1
                    if item[0] not in ended:
                        raise _failure(*processes[item[0]])
                    continue
                if item[1] in (b"S", b"E"):
                    ended.add(item[0])
                yield item
        finally:
            # Stopped early (bad input, a cancel, an error here): stop the workers and drain
            # the queue, so that no reader thread stays blocked on it.
            for process, _errors in processes:
                if process.poll() is None:
                    process.kill()
            while running:
                if frames.get()[1] is _END:
                    running -= 1
            for thread in readers:
                thread.join()
        for process, errors in processes:
            if process.wait() != 0:
                raise _failure(process, errors)


def _failure(process: subprocess.Popen, errors: IO[bytes]) -> RuntimeError:
    process.wait()
    errors.seek(0)
    tail = errors.read().decode("utf-8", "replace").strip().splitlines()[-5:]
    log.error("Slack import: a worker process failed: %s", "\n".join(tail))
    return RuntimeError(f"a Slack worker process stopped (exit status {process.returncode})")


def _read(worker: int, stream: IO[bytes], frames: queue.Queue) -> None:
    try:
        while len(header := stream.read(5)) == 5:
            length = int.from_bytes(header[1:], "big")
            body = stream.read(length) if length else b""
            if len(body) != length:
                break  # cut short: the worker died while writing it
            frames.put((worker, header[:1], body))
    except (OSError, ValueError):  # the pipe was closed under us: the import is over
        pass
    finally:
        frames.put((worker, _END, b""))


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
