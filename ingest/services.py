"""Writes to the corpus: take an upload, import an export in one transaction, delete an export
or a chat."""

from __future__ import annotations

import gc
import itertools
import logging
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.db.models import Exists, Max, Min, OuterRef
from django.utils import timezone

from ingest import slack_import
from ingest.loader import MessageLoader, message_loader
from ingest.models import (
    NEEDS_OWNER,
    OWNER_NAMED_KINDS,
    Conversation,
    Export,
    Identity,
    Message,
    MessageQuerySet,
    SourceKind,
    Speaker,
    export_deleted,
    unreferenced_speakers,
)
from ingest.parsers.detect import PARSERS, detect_kind, load_parser
from ingest.parsers.records import (
    ConversationRecord,
    ExportError,
    IdentityRecord,
    MessageRecord,
    NoticeRecord,
    Record,
    SkippedRecord,
    owner_key,
)
from ingest.progress import ImportCancelled, ImportProgress, ProgressReporter
from ingest.rows import clean_id, clean_name, clean_text, message_row
from joe_site.jobs import HEARTBEAT_STALE, JobStatus
from joe_site.lost_messages import send_on_commit

log = logging.getLogger(__name__)

INTERNAL_ERROR = (
    "The import stopped because of a problem in joe itself, not in your file. Nothing was "
    "imported; the worker's log has the details."
)
# Apps whose exports write the local time of the phone or computer they came from, no zone.
LOCAL_TIME_KINDS = frozenset({SourceKind.WHATSAPP, SourceKind.SIGNAL_DESKTOP, SourceKind.TELEGRAM})
SIGNAL_KEY_GONE = (
    "This Signal backup needs its passphrase, and joe no longer has it (it is kept for an hour "
    "at most and never stored). Retry the import and type it again."
)
# Said of a Signal backup uploaded (or retried) while the cache did not answer: its import is not
# queued, as no worker could read the passphrase, and the file waits for it to be typed again.
SIGNAL_KEY_NOT_KEPT = (
    "joe cannot reach Redis, so it cannot hand the passphrase to the worker (it is never stored "
    "anywhere else), and the import has not started. The file is kept: once Redis is back, type "
    "the passphrase again under “Try again”."
)
# Said by imports that failed this way before the queue kept them to send again (lost_messages).
QUEUE_DOWN = (
    "joe could not hand this import to its worker: the task queue (Redis) did not answer. "
    "Check that it is running, then try again."
)
FILE_GONE = "The uploaded file is no longer on the server, so there is nothing to import."
# Every parser's sentence for a file with no message in it (its parser may not say so itself:
# a Signal backup of a phone that never chatted has all its tables, and no rows).
NO_MESSAGES = "{name} contains no messages."
NOT_SUPPORTED_YET = "joe cannot read {label} files yet."
# Said of a file read as the kind its uploader picked, which looks like another kind.
READ_AS_OTHER = "It looks like {label} instead: pick that kind and import it again."
STILL_RUNNING = "This export is still being imported: cancel the import first."
# An identity whose person deleted their messages, in CorpusWriter.identity_ids: skip them.
ERASED = -1
ERASED_REASON = "deleted by their author"
WORKER_SILENT = "Cancelled: its worker had stopped reporting. Nothing of it was kept."
INTERRUPTED = "The worker stopped during the import; starting again from the beginning."
STILL_QUEUED = "This export is waiting to be imported: cancel the import first."
BEING_DELETED = "This export is being deleted."
DELETE_FAILED = (
    "A problem in joe itself stopped it, and nothing was deleted; the worker's log has the details."
)
# SQLite has one writer at a time, and a running import is it until it ends.
WAIT_FOR_IMPORT = (
    "Another import is running, and with SQLite as the database nothing else can write until it "
    "ends: delete this export once that import has finished."
)
# How long a deleted export's page still says so (instead of "not found") to someone on it.
DELETED_NOTICE_SECONDS = 3600
# Up to this many messages an export is deleted while the page waits (well under a second);
# a bigger one, or one that would wait for another import to finish, is deleted on the worker.
INLINE_DELETE_MAX_MESSAGES = 100_000
# All imports and deletions take this lock (PostgreSQL): the COPY loader relies on being the only
# writer of messages, and an export is never deleted halfway through someone's import.
_IMPORT_LOCK = 0x6A6F65  # "joe"


class ImportInProgress(Exception):
    """The export is being imported right now; the message says what to do instead."""


class ImportBusy(Exception):
    """A worker process reported on the import within HEARTBEAT_STALE: it is importing it (this
    is a second delivery of its message), or was killed a moment ago. The task looks again once
    that heartbeat would be stale (tasks.import_export)."""


class ImportSuperseded(Exception):
    """The export was queued again since, under another task id: that task runs."""


# -- uploads ---------------------------------------------------------------------------------


def create_export(
    *,
    upload: UploadedFile,
    sha256: str,
    kind: str = "",
    owner_name: str = "",
    keep_file: bool = False,
    include_bots: bool = False,
    uploaded_by=None,
) -> Export:
    """Save an uploaded file under UPLOAD_DIR and record it as a queued export."""
    export = Export(
        original_name=Path(upload.name or "export").name[:255],
        kind=kind,
        sha256=sha256,
        size_bytes=upload.size or 0,
        owner_name=owner_name.strip(),
        keep_file=keep_file,
        include_bots=include_bots,
        uploaded_by=uploaded_by,
    )
    export.file.save(export.original_name, upload, save=False)
    export.save()
    return export


def queue_import(
    *, export: Export, passphrase: str | None = None, passphrase_key: str | None = None
) -> bool:
    """Queue (or re-queue) the import on the worker; the passphrase travels only via the cache.

    The task gets an id of its own, kept on the row: an earlier task for the same export still
    in the queue (one cancelled while it waited, then retried) finds another id there and does
    nothing, so the latest attempt, with the latest passphrase, is the one that runs.
    ``passphrase_key``: a passphrase already stashed (``passphrases.key_for``).

    Whether it was queued: a passphrase the cache does not keep (Redis down) would reach no
    worker, so the import is not queued and fails at once with SIGNAL_KEY_NOT_KEPT, its file
    kept for the passphrase to be typed again (a retry)."""
    from ingest import passphrases, tasks  # tasks import this module

    try:
        key = passphrases.stash(passphrase, export_id=export.pk) if passphrase else passphrase_key
    except passphrases.NotKept:
        log.warning("Export %s is not queued: the cache (Redis) did not keep its passphrase, so "
                    "no worker could read it; its page asks for it again", export.pk)  # fmt: skip
        export.mark_failed(SIGNAL_KEY_NOT_KEPT)
        return False
    task_id = uuid.uuid4().hex
    Export.objects.filter(pk=export.pk).update(
        status=JobStatus.QUEUED,
        error="",
        delete_error="",
        cancel_requested=False,
        progress_done=0,
        progress_total=0,
        progress_note="",
        started_at=None,
        finished_at=None,
        celery_task_id=task_id,
        worker_host="",
        worker_pid=None,
        heartbeat_at=None,
    )

    # A broker that does not answer leaves it queued, saying so, and the passphrase kept (an
    # hour at most): joe_site.lost_messages sends it again when the broker is back.
    send_on_commit(
        Export,
        export.pk,
        lambda: tasks.import_export.apply_async((export.pk, key), task_id=task_id),
        task_id=task_id,
    )
    return True


def expire_failed_uploads() -> int:
    """Delete the files of failed and cancelled imports older than JOE_FAILED_UPLOAD_DAYS (a
    friend's whole phone backup should not sit on the server because a passphrase was
    mistyped), except those the admin asked to keep; how many went. The worker runs this
    when it starts and after each import."""
    cutoff = timezone.now() - timedelta(days=settings.JOE_FAILED_UPLOAD_DAYS)
    stale = Export.objects.filter(
        status__in=(JobStatus.FAILED, JobStatus.CANCELLED),
        keep_file=False,
        finished_at__lt=cutoff,
        delete_requested_at__isnull=True,
    ).exclude(file="")
    gone = 0
    for export in stale:
        export.delete_file()
        gone += 1
    if gone:
        log.info("Deleted the files of %d failed or cancelled imports older than %d days",
                 gone, settings.JOE_FAILED_UPLOAD_DAYS)  # fmt: skip
    return gone


def worker_silent(export: Export) -> bool:
    """Whether a running import's worker has written no progress (twice a second while it runs)
    for HEARTBEAT_STALE: it was most likely killed (on SQLite progress goes through the cache,
    so this never says so)."""
    if export.status != JobStatus.RUNNING or connection.vendor == "sqlite":
        return False
    heartbeat = export.heartbeat_at
    return heartbeat is None or timezone.now() - heartbeat > HEARTBEAT_STALE


def cancel_import(export: Export) -> None:
    """Ask the worker to stop the import; one whose worker went silent is cancelled at once.

    A worker killed mid-import (out of memory, a restart that outlived its grace period) leaves
    the export running, and the broker hands the task out again only after its visibility
    timeout: without this, such an import could be neither cancelled nor deleted for a day.
    Nothing of it was kept either way (its transaction never committed)."""
    export.request_cancel()
    export.refresh_from_db(fields=["heartbeat_at"])
    if worker_silent(export):
        Export.objects.filter(pk=export.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.CANCELLED,
            finished_at=timezone.now(),
            progress_note=WORKER_SILENT,
        )
        export.refresh_from_db()


def claim_import(*, export_id: int, task_id: str | None, worker_host: str) -> bool:
    """Take the export's import for this worker process, in one locked transaction: of two
    deliveries of its message (acks_late, a redelivery, two pool processes), only one imports,
    and none reopens an import that has ended. False: nothing to do (deleted, being deleted,
    already imported, failed or cancelled). Raises ImportSuperseded and ImportBusy.

    Whose the running import is does not matter, only whether its worker still reports: the
    default worker runs two processes under one name, so a second delivery to the same name
    may be beside the first, not after it. A worker killed mid-import is taken over once its
    heartbeat is stale (or queued again at once when it restarts under its name)."""
    now = timezone.now()
    with transaction.atomic():
        # FOR NO KEY UPDATE: the import's own transaction holds nothing on this row to wait for.
        export = Export.objects.select_for_update(no_key=True).filter(pk=export_id).first()
        if export is None or not export.is_active or export.is_deleting:
            log.info("Export %s was deleted, cancelled, already imported or is being deleted; "
                     "skipping", export_id)  # fmt: skip
            return False
        if export.celery_task_id and task_id and task_id != export.celery_task_id:
            raise ImportSuperseded(f"Export {export_id} was queued again since task {task_id}")
        heartbeat = export.heartbeat_at
        if export.status == JobStatus.RUNNING and heartbeat and now - heartbeat < HEARTBEAT_STALE:
            if not _importing_process_gone(export, worker_host):
                raise ImportBusy(
                    f"Export {export_id} is being imported by {export.worker_host or 'a worker'}"
                )
            # The pool process importing it was killed (out of memory, say) and the worker put
            # its message back at once (reject_on_worker_lost): no need to wait five minutes.
            log.warning("Export %s: the process of %s importing it (pid %s) is gone; importing "
                        "it again from the beginning", export_id, worker_host,
                        export.worker_pid)  # fmt: skip
        Export.objects.filter(pk=export_id).update(
            status=JobStatus.RUNNING,
            started_at=now,
            error="",
            worker_host=worker_host,
            worker_pid=os.getpid(),
            heartbeat_at=now,
        )
    return True


def _importing_process_gone(export: Export, worker_host: str) -> bool:
    """Whether the process that claimed this running import has exited: told only for a process
    of this same worker (its name is its machine's, and only one worker runs under a name), and
    only by its absence; another machine's processes, or a pid we may not signal, stay unknown."""
    pid = export.worker_pid
    if not pid or not worker_host or export.worker_host != worker_host or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, as another user's process
        return False
    try:  # a zombie its worker has not reaped yet has exited too
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def requeue_interrupted_imports(*, worker_host: str) -> list[int]:
    """Queue again the imports a killed worker of this name left running (called when a worker
    starts: under the same name, it cannot still be running them). Each starts from scratch;
    a Signal backup's passphrase is found again while the cache keeps it (an hour), else the
    import fails saying to retry with it."""
    from ingest import passphrases

    with transaction.atomic():
        lost = list(
            Export.objects.select_for_update()
            .filter(status=JobStatus.RUNNING, worker_host=worker_host, cancel_requested=False)
            .order_by("pk")
        )
        for export in lost:
            queue_import(export=export, passphrase_key=passphrases.key_for(export.pk))
            Export.objects.filter(pk=export.pk).update(progress_note=INTERRUPTED)
        # Someone asked to cancel while the worker was down: that is done now.
        cancelled = Export.objects.filter(
            status=JobStatus.RUNNING, worker_host=worker_host, cancel_requested=True
        )
        cancelled.update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(), progress_note=WORKER_SILENT
        )
    return [export.pk for export in lost]


# -- importing -------------------------------------------------------------------------------


def import_export(
    *,
    export_id: int,
    passphrase: str | None = None,
    owner_name: str = "",
    include_bots: bool = False,
    path: str | Path | None = None,
    progress: Callable[[ImportProgress], None] | None = None,
    time_zone: str = "",
) -> Export:
    """Import an export's messages into the corpus, all or nothing, and record the outcome.

    ``path`` reads that file or folder instead of the export's upload (``manage.py ingest``).
    ``progress`` is called with each progress snapshot (about twice a second). ``time_zone``:
    where the exporting phone or computer was, for the apps that write local times (default:
    the site's ``TIME_ZONE``). Bad input marks
    the export failed with the parser's sentence; an unexpected error does too, and is raised.
    """
    export = Export.objects.get(pk=export_id)
    owner_name = owner_name or export.owner_name
    export.mark_running()
    Export.objects.filter(pk=export_id).update(heartbeat_at=timezone.now())
    try:
        with ProgressReporter(export, callback=progress) as reporter:
            source = Path(path) if path is not None else _upload_path(export)
            kind = export.kind or detect_kind(source)
            if kind != export.kind:
                Export.objects.filter(pk=export.pk).update(kind=kind)
            parser = _parser(kind)
            options: dict = {"passphrase": passphrase} if kind == SourceKind.SIGNAL else {}
            if kind == SourceKind.SIGNAL and not passphrase:
                raise ExportError(SIGNAL_KEY_GONE)
            if kind in OWNER_NAMED_KINDS:
                if not owner_name.strip():
                    raise ExportError(NEEDS_OWNER.format(kind=OWNER_NAMED_KINDS[kind]))
                options["self_name"] = owner_name.strip()
            if kind != SourceKind.SIGNAL:
                options["include_bots"] = include_bots
            if kind in LOCAL_TIME_KINDS:
                options["timezone"] = time_zone or settings.TIME_ZONE
            if kind != SourceKind.SIGNAL and path is None:
                # Chats named after their file (WhatsApp) take the name the person uploaded, not
                # the storage's ("…_k3j9d2a.txt" when a file of that name is still there).
                options["file_name"] = export.original_name
            with transaction.atomic():
                _lock_imports()
                if Message.objects.filter(export_id=export.pk).exists():
                    return export  # another delivery of the same task already imported it
                writer = CorpusWriter(export=export, kind=kind, owner_name=owner_name)
                if kind == SourceKind.TELEGRAM:
                    options["numbered_chats"] = _telegram_numbered_chats()
                    options["known_chats"] = set(
                        Conversation.objects.filter(source_kind=kind).values_list(
                            "external_id", flat=True
                        )
                    )
                    options["held_messages"] = writer.held_messages
                if kind == SourceKind.SIGNAL_DESKTOP:
                    options["shared_me_chats"] = _signal_export_shared_me_chats()
                    options["known_chats"] = dict(
                        Conversation.objects.filter(source_kind=kind).values_list(
                            "external_id", "title"
                        )
                    )
                split = (
                    slack_import.plan(source, include_bots=include_bots)
                    if kind == SourceKind.SLACK
                    else None
                )
                if split is not None:  # a big Slack export, with cores to spare
                    slack_import.write(split, writer, reporter)
                else:
                    records = parser(source, progress=reporter.parser_progress, **options)
                    writer.write(records, reporter)
                if writer.is_empty:
                    raise ExportError(NO_MESSAGES.format(name=source.name))
                reporter.stop()
                writer.save_summary(note=reporter.snapshot().note)
    except ExportError as error:
        export.refresh_from_db()
        message = " ".join(filter(None, [str(error), _read_as_other(export, path)]))
        export.mark_failed(_as_uploaded(message, export, path))
        if not export.can_retry and not export.keep_file:
            export.delete_file()  # damaged or foreign: no retry will ever read it
    except ImportCancelled:
        export.mark_cancelled()
    except Exception:
        log.exception("Import of export %s failed", export.pk)
        export.mark_failed(INTERNAL_ERROR)
        raise
    else:
        if not export.keep_file:
            export.delete_file()
    export.refresh_from_db()
    return export


def _telegram_numbered_chats() -> set[str]:
    """Telegram chats the corpus holds under Telegram's own message numbers ("<chat>:<n>"):
    supergroups, and the one-to-one chats and basic groups imported before those were known by
    their content. The parser keeps the numbers for them, so re-importing adds nothing."""
    numbered = Message.objects.filter(
        conversation=OuterRef("pk"), source_kind=SourceKind.TELEGRAM, external_id__regex=r":-?\d+$"
    )
    return set(
        Conversation.objects.filter(source_kind=SourceKind.TELEGRAM)
        .filter(Exists(numbered))
        .values_list("external_id", flat=True)
    )


def _signal_export_shared_me_chats() -> set[str]:
    """signal-export chats holding owners' messages under the plain "Me" they were imported
    under before owners were told apart by name. The parser keeps those ids for them, so
    re-importing adds nothing."""
    shared_me = Message.objects.filter(
        conversation=OuterRef("pk"),
        identity__source_kind=SourceKind.SIGNAL_DESKTOP,
        identity__external_id="Me",
    )
    return set(
        Conversation.objects.filter(source_kind=SourceKind.SIGNAL_DESKTOP)
        .filter(Exists(shared_me))
        .values_list("external_id", flat=True)
    )


def _as_uploaded(message: str, export: Export, path: str | Path | None) -> str:
    """A parser's sentence names the file it read: for an upload, that is the storage's name
    for it ("slack_82wnvjd.zip" when a "slack.zip" was there before), which the person who
    uploaded it never chose. Name the file they uploaded instead."""
    if path is not None or not export.file.name:
        return message
    stored = Path(export.file.name).name
    if stored and stored != export.original_name:
        message = message.replace(stored, export.original_name)
    return message


def retry_helps(error: str) -> bool:
    """Whether a failed import's ``error`` is one a retry can mend (a passphrase, whose the
    export is, the kind it is read as, a queue or worker that is back). The rest are the file's
    own: its upload is deleted at once, as no retry would ever read it."""
    from ingest.parsers import signal_crypto  # protobuf and cryptography, only for this

    mendable = (
        signal_crypto.WRONG_KEY,
        signal_crypto.NOT_30_DIGITS,
        signal_crypto.UNSUPPORTED_VERSION.split("{")[0],  # a later joe may read it
        NEEDS_OWNER.split("{kind}")[1][:40],
        READ_AS_OTHER.split("{label}")[1],
        SIGNAL_KEY_GONE,
        SIGNAL_KEY_NOT_KEPT,
        QUEUE_DOWN,
        INTERNAL_ERROR,
    )
    return any(part in error for part in mendable)


def _read_as_other(export: Export, path: str | Path | None) -> str:
    """For an upload read as the kind picked for it, that fails as such: the kind it looks
    like instead, in a sentence, if any."""
    if path is not None or not export.kind or not export.has_file:
        return ""
    try:
        kind = detect_kind(export.file.path)
    except ExportError:
        return ""
    if kind == export.kind:
        return ""
    label = SourceKind(kind).label
    return READ_AS_OTHER.format(label=f"an {label}" if label[0] in "AEIOUi" else f"a {label}")


def _upload_path(export: Export) -> Path:
    if not export.has_file:
        raise ExportError(FILE_GONE)
    return Path(export.file.path)


def _parser(kind: str) -> Callable[..., Iterable[Record]]:
    label = SourceKind(kind).label if kind in SourceKind.values else kind
    if kind not in PARSERS:
        raise ExportError(NOT_SUPPORTED_YET.format(label=label))
    try:
        return load_parser(kind)
    except (ImportError, AttributeError):
        raise ExportError(NOT_SUPPORTED_YET.format(label=label)) from None


def _lock_imports(*, wait: bool = True) -> bool:
    """Take the import lock until the transaction ends; without ``wait``, only if it is free
    (returns whether it was taken)."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_IMPORT_LOCK])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_IMPORT_LOCK])
        return cursor.fetchone()[0]


# What a Signal contact with no name and no number was called before, and their labels now.
_OLD_UNKNOWN = "Unknown"
_UNKNOWN_LABEL = re.compile(r"Unknown \((?:…[0-9A-Za-z-]{1,4}|#\d+)\)")


class HeldMessages:
    """The messages the corpus holds in one conversation, as a parser asks for them
    (``ingest.parsers.telegram.HeldChat``): the words under some ids (one indexed lookup per
    10,000), the first and last time, the senders, or every message's words only if asked.
    ``loaded`` counts the rows read."""

    CHUNK = 10_000

    def __init__(self, writer: CorpusWriter, external_id: str) -> None:
        self.writer = writer
        self.kind = writer.kind
        self.conversation = (
            Conversation.objects.filter(source_kind=writer.kind, external_id=external_id)
            .values_list("pk", flat=True)
            .first()
        )
        self.loaded = 0
        self._all: dict[str, str] | None = None

    def _messages(self) -> MessageQuerySet:
        if self.writer.loader is not None:
            self.writer.loader.pause()  # the open COPY, if any, before another statement
        return Message.objects.filter(
            conversation_id=self.conversation, source_kind=self.kind
        ).order_by()

    def texts(self, ids: Collection[str]) -> dict[str, str]:
        if self._all is not None:
            return self._all
        found: dict[str, str] = {}
        if self.conversation is None:
            return found
        ids = sorted(ids)
        for start in range(0, len(ids), self.CHUNK):
            rows = self._messages().filter(external_id__in=ids[start : start + self.CHUNK])
            found.update(rows.values_list("external_id", "text"))
        self.loaded += len(found)
        return found

    def all_texts(self) -> dict[str, str]:
        if self._all is None:
            self._all = {}
            if self.conversation is not None:
                rows = self._messages().values_list("external_id", "text")
                self._all = dict(rows.iterator(chunk_size=10_000))
            self.loaded += len(self._all)
        return self._all

    def span(self) -> tuple[datetime, datetime] | None:
        if self.conversation is None:
            return None
        times = self._messages().aggregate(low=Min("sent_at"), high=Max("sent_at"))
        return None if times["low"] is None else (times["low"], times["high"])

    def senders(self) -> set[str]:
        if self.conversation is None:
            return set()
        rows = self._messages().values_list("identity__external_id", flat=True).distinct()
        return set(rows)


class CorpusWriter:
    """Turns one parse's records into rows, resolving ids through in-memory maps.

    Identities and conversations are created when the first message that needs them arrives,
    so people who never wrote anything in this export leave no trace.
    """

    def __init__(self, *, export: Export, kind: str, owner_name: str = "") -> None:
        self.export = export
        self.kind = kind
        self.owner_name = owner_name.strip()
        self.identity_records: dict[str, IdentityRecord] = {}
        self.conversation_records: dict[str, ConversationRecord] = {}
        self.identity_ids: dict[str, int] = {}
        self.conversation_ids: dict[str, int] = {}
        self.skipped: Counter[str] = Counter()
        self.notices: list[str] = []
        self.first_at = None
        self.last_at = None
        self.loader: MessageLoader | None = None
        # The export's people by name (lower case), for namesakes(): built as records come in.
        self._by_name: dict[str, list[str]] = {}
        self._indexed = 0

    def namesakes(self, external_id: str, name: str) -> list[str]:
        """The other people of this export called ``name`` (any case), as their rows store
        their ids: on one app, two people of one name are two people."""
        by_name = self._by_name
        new = itertools.islice(self.identity_records.items(), self._indexed, None)
        for other, record in new:
            by_name.setdefault(record.display_name.strip().lower(), []).append(other)
        self._indexed = len(self.identity_records)
        key = name.strip().lower()
        return [clean_id(e) for e in by_name.get(key, ()) if e != external_id]

    def write(self, records: Iterable[Record], reporter: ProgressReporter) -> None:
        with (
            fewer_collections(),
            message_loader(export_id=self.export.pk, source_kind=self.kind) as loader,
        ):
            self.loader = loader
            self.take(records, reporter)

    def take(self, records: Iterable[Record], reporter: ProgressReporter) -> None:
        """Records into rows for the open loader (``self.loader``)."""
        export_id, kind, loader = self.export.pk, self.kind, self.loader
        assert loader is not None
        identity_ids, conversation_ids = self.identity_ids, self.conversation_ids
        add = loader.add
        for record in records:
            if type(record) is MessageRecord:
                identity_id = identity_ids.get(record.identity_id) or self._identity(
                    record.identity_id
                )
                if identity_id == ERASED:  # they deleted their messages: never again
                    self.skipped[ERASED_REASON] += 1
                    continue
                conversation_id = conversation_ids.get(
                    record.conversation_id
                ) or self._conversation(record.conversation_id)
                sent_at = record.sent_at
                if self.first_at is None or sent_at < self.first_at:
                    self.first_at = sent_at
                if self.last_at is None or sent_at > self.last_at:
                    self.last_at = sent_at
                add(message_row(conversation_id, identity_id, export_id, kind, record))
                if not loader.seen % 5000:
                    reporter.messages = loader.seen
                    reporter.report()
            elif type(record) is SkippedRecord:
                self.skipped[record.reason] += 1
            elif type(record) is IdentityRecord:
                self.identity_records[record.external_id] = record
            elif type(record) is ConversationRecord:
                self.conversation_records[record.external_id] = record
            elif type(record) is NoticeRecord and record.text not in self.notices:
                self.notices.append(record.text)
        reporter.messages = loader.seen

    def held_messages(self, external_id: str) -> HeldMessages:
        """What the corpus holds in one of this kind's conversations (this import's so far
        included), for a parser that must find how its messages were keyed: read only as far
        as the parser asks."""
        return HeldMessages(self, external_id)

    def _identity(self, external_id: str) -> int:
        self.loader.pause()  # type: ignore[union-attr]
        pk = self.create_identity(external_id)
        if erased({pk}):
            pk = ERASED
        self.identity_ids[external_id] = pk
        return pk

    def create_identity(self, external_id: str, *, pk: int | None = None) -> int:
        """The identity's row (made now if it has none, with ``pk`` if given); its pk."""
        record = self.identity_records.get(external_id) or IdentityRecord(external_id, external_id)
        name = (
            self.owner_name if record.is_self and self.owner_name else ""
        ) or record.display_name
        stored_id = external_id
        if record.is_self and self.kind in OWNER_NAMED_KINDS and self.owner_name:
            stored_id = owner_key(external_id, self.owner_name)
        identity, created = Identity.objects.get_or_create(
            source_kind=self.kind,
            external_id=clean_id(stored_id),
            defaults={
                "display_name": clean_name(name)[:255] or external_id[:255],
                "full_name": clean_text(str(record.extra.get("real_name") or ""))[:255],
                "is_bot": record.is_bot,
                "is_self": record.is_self,
                **({"pk": pk} if pk is not None else {}),
            },
        )
        if not created and self.kind == SourceKind.SIGNAL:
            _relabel_unknown(identity, record.display_name)
        if created and not identity.is_bot:
            namesakes = self.namesakes(external_id, record.display_name)
            speaker = _speaker_for(identity, namesakes)
            identity.assign_to(speaker)
            if speaker.messages_deleted_at is not None:
                # The friend deleted their messages: this account of theirs is skipped too.
                Identity.objects.filter(pk=identity.pk).update(
                    excluded=True, messages_deleted_at=timezone.now()
                )
        return identity.pk

    def _conversation(self, external_id: str) -> int:
        self.loader.pause()  # type: ignore[union-attr]
        pk = self.create_conversation(external_id)
        self.conversation_ids[external_id] = pk
        return pk

    def create_conversation(self, external_id: str, *, pk: int | None = None) -> int:
        """The conversation's row (made now if it has none, with ``pk`` if given); its pk."""
        record = self.conversation_records.get(external_id) or ConversationRecord(
            external_id, external_id
        )
        defaults = {"title": clean_text(record.title)[:255], "is_group": record.is_group}
        conversation, _ = Conversation.objects.get_or_create(
            source_kind=self.kind,
            external_id=clean_id(external_id),
            defaults={**defaults, **({"pk": pk} if pk is not None else {})},
        )
        return conversation.pk

    @property
    def is_empty(self) -> bool:
        """No message came, or only the app's own notices (WhatsApp's encryption notice, Slack's
        joins): nobody said anything, an empty export as every parser tells it."""
        return not (self.loader and self.loader.seen) and not (set(self.skipped) - {"system"})

    def save_summary(self, *, note: str) -> None:
        loader = self.loader
        assert loader is not None
        Export.objects.filter(pk=self.export.pk).update(
            kind=self.kind,
            conversations_count=len(self.conversation_ids),
            identities_count=sum(pk != ERASED for pk in self.identity_ids.values()),
            messages_count=loader.inserted,
            duplicates_count=loader.duplicates,
            skipped=dict(self.skipped),
            notices=self.notices,
            first_message_at=self.first_at,
            last_message_at=self.last_at,
            status=JobStatus.SUCCEEDED,
            finished_at=timezone.now(),
            progress_note=note[:200],
        )


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while rows stream through.

    An import allocates millions of short-lived objects and holds a batch of rows; with the
    default thresholds the collector walks that batch over and over (~10% of an import's CPU).
    Cycles still go, a little later: the young generation is collected every 50,000
    allocations instead of 700.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def erased_speaker_names() -> set[str]:
    """The names (lower case) of the speakers whose friend deleted their messages: a new
    identity of that name may be given to one of them, and then be skipped too."""
    named = Speaker.objects.filter(messages_deleted_at__isnull=False)
    return {name.strip().lower() for name in named.values_list("display_name", flat=True)}


def erased(identity_pks: Iterable[int]) -> set[int]:
    """Those of these identities whose person deleted their messages (their imports skip them)."""
    return set(
        Identity.objects.filter(
            pk__in=list(identity_pks), messages_deleted_at__isnull=False
        ).values_list("pk", flat=True)
    )


def _relabel_unknown(identity: Identity, label: str) -> None:
    """A Signal contact with no name and no number imported as plain "Unknown" (before each had
    a label of its own, 'Unknown (…7e8a)'): re-importing gives the identity its label, and its
    speaker too where that holds no one else and is still called "Unknown". A name staff chose
    stays."""
    if identity.display_name != _OLD_UNKNOWN or not _UNKNOWN_LABEL.fullmatch(label):
        return
    identity.display_name = label
    Identity.objects.filter(pk=identity.pk).update(display_name=label)
    speaker = identity.speaker
    if (
        speaker is not None
        and speaker.display_name == _OLD_UNKNOWN
        and not speaker.identities.exclude(pk=identity.pk).exists()
    ):
        speaker.rename(label)


def _speaker_for(identity: Identity, namesakes: list[str]) -> Speaker:
    """The speaker already called the identity's name (any case): the same friend on another
    app, or in another export of this one. Not the speaker of a namesake in this same export
    (external ids): two Slack users of one workspace may both show as "Sam". Such a second Sam
    gets a speaker of their own, named by their full name where the app gives a different one
    ("Sam Park")."""
    taken = Identity.objects.filter(
        source_kind=identity.source_kind, external_id__in=namesakes, speaker__isnull=False
    ).values("speaker_id")
    name = identity.display_name.strip()
    existing = (
        Speaker.objects.filter(display_name__iexact=name)
        .exclude(pk__in=taken)
        .order_by("pk")
        .first()
    )
    if existing is not None:
        return existing
    full_name = identity.full_name.strip()
    name_taken = namesakes and Speaker.objects.filter(display_name__iexact=name).exists()
    if name_taken and full_name and full_name.lower() != name.lower():
        existing = (
            Speaker.objects.filter(display_name__iexact=full_name)
            .exclude(pk__in=taken)
            .order_by("pk")
            .first()
        )
        return existing or Speaker.create_named(full_name)
    return Speaker.create_named(name)


# -- deleting --------------------------------------------------------------------------------


def request_delete(*, export_id: int) -> int | None:
    """Delete an export now if that is quick, else hand it to the worker.

    Returns how many messages went, or None when the deletion was queued: the export is then
    marked (``delete_requested_at``) until ``tasks.delete_export`` has removed it, or has
    recorded why it could not (``delete_error``). Asking again before a worker has begun queues
    it again (the first message may have been lost with its broker), which is harmless: the
    task does nothing for an export that is gone.
    """
    from ingest import tasks  # the tasks module imports this one

    if connection.vendor == "sqlite":
        running = Export.objects.filter(status=JobStatus.RUNNING).exclude(pk=export_id)
        if running.exists():
            raise ImportInProgress(WAIT_FOR_IMPORT)  # before anything writes (it would fail)
    with transaction.atomic():
        export = Export.objects.select_for_update().get(pk=export_id)
        _refuse_active(export)
        if not export.is_deleting:
            if export.messages_count <= INLINE_DELETE_MAX_MESSAGES and _lock_imports(wait=False):
                return _delete(export)
            Export.objects.filter(pk=export.pk).update(
                delete_requested_at=timezone.now(), delete_started_at=None, delete_error=""
            )
        transaction.on_commit(lambda: tasks.delete_export.delay(export.pk))
    return None


def count_messages(count: int) -> str:
    """'1 message', '12,345 messages'."""
    return f"{count:,} message{'' if count == 1 else 's'}"


def cancel_delete(*, export_id: int) -> bool:
    """Withdraw a deletion no worker has begun; returns whether it was withdrawn."""
    return bool(
        Export.objects.filter(
            pk=export_id, delete_requested_at__isnull=False, delete_started_at=None
        ).update(delete_requested_at=None)
    )


def recently_deleted(export_id: int) -> str | None:
    """What the page of an export deleted in the last hour should say instead of "not found"."""
    return cache.get(f"ingest:deleted:{export_id}")


def _refuse_active(export: Export) -> None:
    if export.status == JobStatus.RUNNING:
        raise ImportInProgress(STILL_RUNNING)
    if export.status == JobStatus.QUEUED:
        raise ImportInProgress(STILL_QUEUED)


def delete_export(*, export_id: int) -> int:
    """Delete an export and exactly its messages, then the conversations, identities (but
    those staff excluded or whose friend opted out) and speakers that only those messages held
    up. Returns how many messages went.

    Waits for a running import of another export to finish (they share a lock)."""
    with transaction.atomic():
        _lock_imports()
        export = Export.objects.select_for_update().get(pk=export_id)
        _refuse_active(export)
        return _delete(export)


def _delete(export: Export) -> int:
    """The deletion itself, inside the caller's transaction, which holds the import lock."""
    messages = Message.objects.filter(export=export)
    # order_by(): with the model's ordering DISTINCT would return a row per message.
    identity_ids = set(messages.order_by().values_list("identity_id", flat=True).distinct())
    conversation_ids = set(messages.order_by().values_list("conversation_id", flat=True).distinct())
    voice_ids = _voice_ids(identity_ids)
    deleted = messages.delete_in_sql()
    Conversation.objects.filter(pk__in=conversation_ids).filter(
        ~Exists(Message.objects.filter(conversation=OuterRef("pk")))
    ).delete()
    # One pass to find the orphans: right after the DELETE each of these lookups still walks
    # the deleted rows' index entries (1.3 s for a 1M-message export). An identity staff
    # excluded, or one of a friend who opted out, stays with its speaker: re-importing the
    # export finds it again (by the app's id, whatever the speaker is called now) and trains
    # on none of it.
    orphans = list(
        Identity.objects.filter(pk__in=identity_ids, excluded=False)
        .exclude(speaker__opted_out=True)
        .filter(~Exists(Message.objects.filter(identity=OuterRef("pk"))))
        .values_list("pk", "speaker_id")
    )
    Identity.objects.filter(pk__in=[pk for pk, _ in orphans]).delete()
    speaker_ids = {speaker for _, speaker in orphans if speaker is not None}
    unreferenced_speakers().filter(pk__in=speaker_ids).delete()
    storage, name = export.file.storage, export.file.name
    notice = f"Deleted {export.original_name} and its {count_messages(deleted)}."
    key, export_id = f"ingest:deleted:{export.pk}", export.pk
    export.delete()
    transaction.on_commit(lambda: cache.set(key, notice, DELETED_NOTICE_SECONDS))
    _say_deleted(export.original_name, voice_ids, export.finished_at)
    if name:
        transaction.on_commit(lambda: storage.delete(name))
    log.info("Deleted export %s and its %d messages", export_id, deleted)
    return deleted


def delete_conversations(conversations: Iterable[Conversation]) -> int:
    """Delete chats with their messages, in SQL (staff's admin: a private chat that should
    not be in the corpus); the runs that learnt from them are told, as for an export. Returns
    how many messages went."""
    with transaction.atomic():
        conversations = list(conversations)
        messages = Message.objects.filter(conversation__in=conversations)
        identity_ids = set(messages.order_by().values_list("identity_id", flat=True).distinct())
        imported = Export.objects.filter(pk__in=messages.order_by().values("export_id").distinct())
        imported_at = imported.aggregate(first=Min("finished_at"))["first"]
        voice_ids = _voice_ids(identity_ids)
        deleted = messages.delete_in_sql()
        Conversation.objects.filter(pk__in=[c.pk for c in conversations]).delete()
        chats = [str(c) for c in conversations]
        _say_deleted(f"{len(chats)} chats", voice_ids, imported_at, chats=chats)
    return deleted


def _voice_ids(identity_ids: set[int]) -> set[int]:
    """Every id the identities' speakers had (merges, splits): the runs that learnt them."""
    voices = Speaker.objects.filter(identities__in=identity_ids).values_list("pk", "former_ids")
    return {i for pk, former in voices for i in (pk, *former)}


def _say_deleted(
    name: str, voice_ids: set[int], imported_at: datetime | None, *, chats: Iterable[str] = ()
) -> None:
    """export_deleted, once the deletion commits: the trainer flags the runs that learnt it."""
    transaction.on_commit(
        lambda: export_deleted.send(
            Export, name=name, speaker_ids=voice_ids, imported_at=imported_at, chats=list(chats)
        )
    )
