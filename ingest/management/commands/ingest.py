"""`manage.py ingest PATH`: import an export in this terminal, with a progress bar.

The same service the worker runs, on a file or folder read in place (never copied or deleted).
The export gets a row like an upload's, so it shows on the Exports page and can be deleted there.
"""

from __future__ import annotations

import getpass
import hashlib
import sys
import zoneinfo
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ingest import services
from ingest.forms import available_kinds
from ingest.models import NEEDS_OWNER, OWNER_NAMED_KINDS, Export, SourceKind
from ingest.parsers.detect import detect_kind
from ingest.parsers.records import ExportError
from ingest.parsers.signal_crypto import normalize_passphrase
from ingest.progress import ImportProgress
from joe_site.jobs import JobStatus


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class Command(BaseCommand):
    help = "Import a chat export (file or folder) into the corpus."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--kind", choices=[k for k, _ in available_kinds()], help="skip detection"
        )
        parser.add_argument(
            "--passphrase-file",
            type=Path,
            help="file holding the Signal backup's passphrase (else it is asked for)",
        )
        parser.add_argument(
            "--owner-name",
            default="",
            help="whose phone or computer it is from: Signal (optional), iMessage and "
            "signal-export (needed: their files call everyone's owner 'me')",
        )
        parser.add_argument("--include-bots", action="store_true", help="keep bots' messages")
        parser.add_argument(
            "--timezone",
            default="",
            help="the time zone the phone or computer was in, for exports that write local "
            "times (WhatsApp, signal-export, Telegram before 2021); default: TIME_ZONE",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"].expanduser().resolve()
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        try:
            kind = options["kind"] or detect_kind(path)
        except ExportError as error:
            raise CommandError(str(error)) from None
        if kind in OWNER_NAMED_KINDS and not options["owner_name"].strip():
            message = NEEDS_OWNER.format(kind=OWNER_NAMED_KINDS[kind])
            raise CommandError(f"{message} Pass --owner-name NAME.")
        if options["timezone"]:
            try:
                zoneinfo.ZoneInfo(options["timezone"])
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise CommandError(
                    f"{options['timezone']!r} is not a time zone joe knows; use a name like "
                    "Europe/Berlin or America/New_York."
                ) from None
        passphrase = self._passphrase(options["passphrase_file"]) if kind == "signal" else None
        if passphrase is not None:
            try:  # a mistyped passphrase fails here, before the export gets a row
                normalize_passphrase(passphrase)
            except ExportError as error:
                raise CommandError(str(error)) from None
        export = Export.objects.create(
            original_name=path.name,
            kind=kind,
            sha256=sha256_of_file(path) if path.is_file() else "",
            size_bytes=path.stat().st_size if path.is_file() else 0,
            owner_name=options["owner_name"],
            include_bots=options["include_bots"],
            keep_file=True,
        )
        self.stdout.write(f"Importing {path.name} ({SourceKind(kind).label}) as export {export.pk}")
        earlier = export.earlier_import()
        if earlier is not None:
            self.stdout.write(f"This file was already imported on {earlier.created_at:%Y-%m-%d}.")
        with tqdm(total=0, unit="B", unit_scale=True, dynamic_ncols=True) as bar:

            def show(progress: ImportProgress) -> None:
                if progress.unit != "bytes":
                    bar.unit, bar.unit_scale = progress.unit, False
                bar.total = progress.total
                bar.update(progress.done - bar.n)
                bar.set_postfix(messages=f"{progress.messages:,}")

            try:
                export = services.import_export(
                    export_id=export.pk,
                    passphrase=passphrase,
                    owner_name=options["owner_name"],
                    include_bots=options["include_bots"],
                    path=path,
                    progress=show,
                    time_zone=options["timezone"],
                )
            except KeyboardInterrupt:
                export.mark_cancelled()
                raise CommandError("Stopped; nothing was imported.") from None
            if export.status == JobStatus.SUCCEEDED and bar.total:
                bar.update(bar.total - bar.n)  # the last report may come before the end
                bar.set_postfix(messages=f"{export.messages_count:,}")
        if export.status != JobStatus.SUCCEEDED:
            raise CommandError(export.error or "The import did not finish.")
        for line in export.summary_lines():
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(f"Done: {export.get_absolute_url()}"))

    def _passphrase(self, passphrase_file: Path | None) -> str:
        if passphrase_file is not None:
            try:
                return passphrase_file.read_text().strip()
            except OSError as error:
                raise CommandError(f"Cannot read {passphrase_file}: {error.strerror}.") from None
        if not sys.stdin.isatty():
            raise CommandError(
                "This is a Signal backup: pass its passphrase with --passphrase-file."
            )
        return getpass.getpass("Signal backup passphrase (30 digits): ")
