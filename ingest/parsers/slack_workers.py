"""One share of a big Slack export, parsed in a worker process into binary COPY bytes.

A big import on a machine with cores to spare splits the export's day files among a few of
these processes (``ingest.slack_import`` starts them and reads what they write). Each one opens
the export itself, reads the same users and channels, and parses its share of day files with the
same code as a plain parse (``slack.layout`` and ``_SlackExport.messages``), so a message comes
out the same either way. The importing process reserved database ids for every person and
conversation beforehand; a worker turns each message whose sender has one into the row the
loader would have built and packs it for the COPY (``ingest.rows.RowPacker``), so the importer
only forwards bytes. A message from someone users.json does not list (a bot, a deleted account)
goes back as a record, for the importer to handle as in a plain parse.

No Django and no database here. The protocol, on stdout, is frames of one type byte, a 4-byte
big-endian length and that many bytes:

- ``M``: what was read, in reading order: a pickled list of segments, each either packed rows
  (their COPY bytes, without header or trailer, and how many) or a list of records the importer
  handles itself (IdentityRecord, MessageRecord). Order matters: when two copies of a message
  meet in the database, the one that arrives first is kept, as in a plain parse.
- ``P``: one more day file done.
- ``S``: the share's summary, pickled (see ``_Summary``), once, at the end.
- ``E``: bad input: the parser's sentence in UTF-8; the worker then stops.

The job comes pickled on stdin (``Job``); only the importing process writes it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import pickle
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from ingest.rows import RowPacker, message_row

from . import slack
from .archive import Limits, open_archive
from .records import ExportError, IdentityRecord, MessageRecord

ITEMS_PER_FRAME = 4_000  # messages (packed rows or records) in one M frame


@dataclass(frozen=True, slots=True)
class Unit:
    """Day files ``start:stop`` (in sorted order) of one conversation: the one at
    ``conversation`` in ``slack.layout``'s list (two conversations may share a folder name)."""

    conversation: int
    start: int
    stop: int


@dataclass(slots=True)
class Job:
    path: str
    include_bots: bool
    limits: Limits | None
    export_id: int
    kind: str
    identity_ids: dict[str, int]  # external id -> the id its Identity row has or will have
    conversation_ids: dict[str, int]
    units: list[Unit]


@dataclass(slots=True)
class Summary:
    records: int = 0  # messages and skipped ones: none at all in every share is an error
    skipped: Counter[str] = field(default_factory=Counter)
    first_at: Any = None
    last_at: Any = None
    # Every sender of a message (listed or not), in the order of their first message: people
    # are created in that order, as a plain import creates them (speaker names and slugs).
    senders: dict[str, None] = field(default_factory=dict)
    # Conversations that packed rows name. Only those get a row (the importer adds the ones its
    # records name): as in a plain parse, skipped messages create no conversation.
    conversations: set[str] = field(default_factory=set)


_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)
_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)


def auto_workers(cores: int) -> int:
    """How many worker processes "auto" means: one per core but one, at most four. On two
    cores that is one: the importing process then only forwards bytes, and the worker and the
    database backend share the two cores."""
    return 0 if cores < 2 else min(4, cores - 1)


def frame(kind: bytes, body: bytes) -> bytes:
    return kind + len(body).to_bytes(4, "big") + body


def run(
    job: Job, send: Callable[[bytes], None], flush: Callable[[], None] = lambda: None
) -> Summary:
    """Parse the job's share and send its frames (all but ``S`` and ``E``), in reading order:
    rows and records go out in the order they were read, so that when two copies of a message
    meet in the database the first one read is kept, as in a plain import."""
    summary = Summary()
    packer = RowPacker()
    pack = packer.pack
    identity_ids, export_id, kind = job.identity_ids, job.export_id, job.kind
    senders = summary.senders
    records: list[IdentityRecord | MessageRecord] = []
    skipped = summary.skipped
    first_at, last_at = _LATEST, _EARLIEST  # of the packed rows (no None checks per row)
    count = 0

    # What is read goes out in batches of segments, in reading order: packed rows (bytes, count)
    # and lists of records, one after the other as the senders alternate.
    segments: list[tuple[bytes, int] | list[IdentityRecord | MessageRecord]] = []
    pending = 0  # messages and records in the batch so far

    def cut() -> None:
        """Close the open segment (rows or records)."""
        nonlocal records
        if packer.rows:
            segments.append(packer.take())
        if records:
            segments.append(records)
            records = []

    def send_batch() -> None:
        nonlocal pending
        cut()
        if segments:
            send(frame(b"M", pickle.dumps(segments, pickle.HIGHEST_PROTOCOL)))
            segments.clear()
        pending = 0

    with open_archive(job.path, job.limits) as archive:
        export, _identities, conversations, days = slack.layout(archive, job.include_bots)
        message = export.message
        events_of = -1
        edits: dict[str, dict[str, Any]] = {}
        deleted: set[str] = set()
        for unit in job.units:
            conv = conversations[unit.conversation]
            members = sorted(days[conv.folder])
            if events_of != unit.conversation:  # edits may sit in any of its days
                edits, deleted = export.events(members)
                events_of = unit.conversation
            conversation_id = job.conversation_ids[conv.external_id]
            named = False  # whether a packed row names this conversation yet
            for member in members[unit.start : unit.stop]:
                # What export.messages does, without its generator: this runs per message.
                for msg in export.day(member):
                    record = message(conv, msg, edits, deleted)
                    count += 1
                    kind_of = type(record)
                    if kind_of is tuple:  # a sender users.json does not list, then the message
                        identity, record = record
                        if packer.rows:
                            cut()
                        records.append(identity)
                        kind_of = MessageRecord
                    if kind_of is MessageRecord:
                        sender = record.identity_id
                        if sender not in senders:
                            senders[sender] = None
                        identity_id = identity_ids.get(sender)
                        if identity_id is None:  # the importer handles it
                            if packer.rows:
                                cut()
                            records.append(record)
                            pending += 1
                            if pending >= ITEMS_PER_FRAME:
                                send_batch()
                            continue
                        sent_at = record.sent_at
                        if sent_at < first_at:
                            first_at = sent_at
                        if sent_at > last_at:
                            last_at = sent_at
                        if records:
                            cut()
                        pack(message_row(conversation_id, identity_id, export_id, kind, record))
                        if not named:
                            summary.conversations.add(conv.external_id)
                            named = True
                        pending += 1
                        if pending >= ITEMS_PER_FRAME:
                            send_batch()
                    else:
                        skipped[record.reason] += 1
                send(frame(b"P", b""))
                flush()  # progress shows as files are read, not when a frame fills up
    send_batch()
    summary.records = count
    if first_at is not _LATEST:  # at least one packed row
        summary.first_at, summary.last_at = first_at, last_at
    return summary


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    job: Job = pickle.load(stdin)  # noqa: S301 (written by the importing process only)
    try:
        summary = run(job, stdout.write, stdout.flush)
    except ExportError as error:
        stdout.write(frame(b"E", str(error).encode("utf-8", "replace")))
        stdout.flush()
        return 0
    stdout.write(frame(b"S", pickle.dumps(summary, pickle.HIGHEST_PROTOCOL)))
    stdout.flush()
    return 0


if __name__ == "__main__":
    # Through the module's own name, so that what it pickles names ingest.parsers.slack_workers
    # classes, not __main__ ones.
    from ingest.parsers import slack_workers

    with contextlib.suppress(BrokenPipeError):  # the importer stopped reading: it gave up
        sys.exit(slack_workers.serve(sys.stdin.buffer, sys.stdout.buffer))
