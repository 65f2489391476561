"""Forms for uploading exports and tidying up who is who."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from django import forms
from django.conf import settings

from ingest.models import NEEDS_OWNER, OWNER_NAMED_KINDS, Export, SourceKind, Speaker
from ingest.parsers.detect import PARSERS, detect_kind
from ingest.parsers.records import ExportError
from ingest.uploads import too_big_message
from joe_site.forms import FocusFirstError

NEEDS_PASSPHRASE = "This is a Signal backup: type the 30-digit passphrase Signal showed you."  # noqa: S105
CHOOSE_AGAIN = "Nothing was imported: choose the file again and type its passphrase."
CHOOSE_FILE_AGAIN = "Nothing was imported: say whose it is and choose the file again."
OWNER_HELP = (
    "Signal, iMessage and signal-export. Their own messages get this name, so they match them "
    "on other apps (the first time an export of theirs is imported; after that, rename them on "
    "the Speakers page). Needed for iMessage and signal-export, whose files call everyone's "
    "owner “me”."
)
# What the browser checks before sending the file (the server checks again): 30 digits, spaces
# anywhere. An HTML pattern must match the whole value.
PASSPHRASE_PATTERN = r"(\s*\d){30}\s*"  # noqa: S105 (a pattern, not a secret)
# The passphrase field of the upload and retry forms: a phone shows digits, a browser refuses
# anything but 30 of them before the file is sent again.
PASSPHRASE_ATTRS = {
    "autocomplete": "off",
    "inputmode": "numeric",
    "pattern": PASSPHRASE_PATTERN,
    "title": "The 30 digits Signal showed when backups were turned on.",
}


def available_kinds() -> list[tuple[str, str]]:
    """The kinds whose parser is installed, for the override select."""
    kinds = []
    for value, label in SourceKind.choices:
        module = PARSERS.get(value, "").rpartition(".")[0]
        if module and importlib.util.find_spec(module) is not None:
            kinds.append((value, label))
    return kinds


def check_passphrase(passphrase: str) -> str:
    from ingest.parsers.signal_crypto import normalize_passphrase  # pulls in cryptography

    try:
        normalize_passphrase(passphrase)
    except ExportError as error:
        raise forms.ValidationError(str(error)) from None
    return passphrase


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Export file",
        help_text="A Slack export zip, a Signal .backup, a WhatsApp .txt or zip…",
    )
    kind = forms.ChoiceField(
        required=False,
        label="Kind",
        help_text="joe recognises the file; change this if it's wrong.",
    )
    passphrase = forms.CharField(
        required=False,
        strip=True,
        label="Backup passphrase",
        help_text="Signal only. The 30 digits from when backups were turned on. Used once, "
        "never stored.",
        widget=forms.PasswordInput(attrs=PASSPHRASE_ATTRS),
    )
    owner_name = forms.CharField(
        required=False,
        max_length=100,
        label="Whose phone is it?",
        help_text=OWNER_HELP,
    )
    keep_file = forms.BooleanField(required=False, label="Keep the file after importing")
    include_bots = forms.BooleanField(required=False, label="Import bots' messages too (Slack)")

    def __init__(self, *args, too_big: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.too_big = too_big
        self.fields["kind"].choices = [("", "Detect automatically"), *available_kinds()]
        self.fields["file"].widget.attrs["data-max-bytes"] = settings.JOE_MAX_UPLOAD_BYTES
        self.detect_error = ""
        self.detected_kind = ""  # what the uploaded file turned out to be, once cleaned
        self.detected_name = ""  # and its name: the page knows that file when it is chosen again

    @property
    def max_bytes(self) -> int:
        return settings.JOE_MAX_UPLOAD_BYTES

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if upload is not None and upload.size > settings.JOE_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(too_big_message(upload.size))
        return upload

    def full_clean(self) -> None:
        super().full_clean()
        if self.too_big:  # the upload handler dropped the file while it arrived
            self._errors.pop("file", None)
            self.add_error("file", too_big_message(0))
        # The refused form replaces itself, and the button pressed with it: the focus goes to
        # the first field to fix (read out with its error), not to the top of the page.
        first = next((name for name in self.fields if name in self._errors), None)
        if first is not None:
            self.fields[first].widget.attrs["data-focus-after-swap"] = ""

    def clean(self) -> dict:
        data = super().clean()
        upload = data.get("file")
        if upload is None:
            return data
        kind = data.get("kind") or ""
        if not kind and hasattr(upload, "temporary_file_path"):
            temporary = Path(upload.temporary_file_path())
            try:
                kind = detect_kind(temporary)
            except ExportError as error:
                # Reported on the export's page, with the file: by the name staff chose, not
                # the temporary one it arrived under ("tmpkor3_b2k.upload.zip looks like…").
                chosen = Path(upload.name or "").name or "The file"
                self.detect_error = str(error).replace(temporary.name, chosen)
        data["kind"] = self.detected_kind = kind
        self.detected_name = Path(upload.name or "").name
        if kind == SourceKind.SIGNAL:
            if not data.get("passphrase"):
                self.add_error("passphrase", NEEDS_PASSPHRASE)
            else:
                try:
                    check_passphrase(data["passphrase"])
                except forms.ValidationError as error:
                    self.add_error("passphrase", error)
            if "passphrase" in self.errors:
                self.add_error(None, CHOOSE_AGAIN)  # a browser never fills a file input back
        if kind in OWNER_NAMED_KINDS and not data.get("owner_name", "").strip():
            self.add_error("owner_name", NEEDS_OWNER.format(kind=OWNER_NAMED_KINDS[kind]))
            self.add_error(None, CHOOSE_FILE_AGAIN)
        return data


class RetryForm(FocusFirstError, forms.Form):
    """Import a failed or cancelled export's file again, as the same kind or another one (a
    file read as the wrong kind fails the same way every time)."""

    kind = forms.ChoiceField(required=False, label="Read it as")
    passphrase = forms.CharField(
        required=False,
        label="Backup passphrase",
        widget=forms.PasswordInput(attrs=PASSPHRASE_ATTRS),
    )
    owner_name = forms.CharField(required=False, max_length=100, label="Whose is it?")

    def __init__(self, *args, export: Export, **kwargs) -> None:
        kwargs.setdefault("initial", {"kind": export.kind, "owner_name": export.owner_name})
        super().__init__(*args, **kwargs)
        self.export = export
        self.fields["kind"].choices = [("", "Detect automatically"), *available_kinds()]
        self.needs_passphrase = export.is_signal
        self.asks_owner = export.kind in OWNER_NAMED_KINDS

    def clean(self) -> dict:
        data = super().clean()
        kind = data.get("kind") or ""
        if not kind and self.export.has_file:
            try:
                kind = detect_kind(Path(self.export.file.path))
            except ExportError:
                kind = ""  # the import says why, on the page
        data["kind"] = kind
        self.needs_passphrase = kind == SourceKind.SIGNAL
        passphrase = data.get("passphrase", "")
        if not self.needs_passphrase:
            data["passphrase"] = ""
        elif not passphrase:
            self.add_error("passphrase", NEEDS_PASSPHRASE)
        else:
            try:
                data["passphrase"] = check_passphrase(passphrase)
            except forms.ValidationError as error:
                self.add_error("passphrase", error)
        self.asks_owner = self.asks_owner or kind in OWNER_NAMED_KINDS
        if kind in OWNER_NAMED_KINDS and not data.get("owner_name", "").strip():
            self.add_error("owner_name", NEEDS_OWNER.format(kind=OWNER_NAMED_KINDS[kind]))
        return data


class RenameSpeakerForm(forms.Form):
    display_name = forms.CharField(max_length=100, label="Name")


class SpeakerChoiceForm(forms.Form):
    """Pick a speaker: to merge into, or to give an identity to."""

    speaker = forms.ModelChoiceField(
        queryset=Speaker.objects.all(),
        label="Speaker",
        # The page was older than the list: someone merged that speaker away meanwhile.
        error_messages={
            "invalid_choice": "That speaker is no longer here: it was merged into another "
            "meanwhile. The list is up to date now; pick again."
        },
    )


class ExcludeForm(forms.Form):
    excluded = forms.BooleanField(required=False)
