"""Safe, uniform access to an export that is a zip file or an unpacked folder.

Parsers never extract anything to disk: they list member paths and read members as streams. A zip
is checked before anything is read: member paths must stay inside the archive (no absolute paths,
drive letters or ``..``), and the declared sizes must pass the zip-bomb limits. Checking declared
sizes is enough because ``zipfile`` stops decompressing a member at its declared size (and raises
on a CRC mismatch), so a member cannot inflate past what the central directory says.

It also has ``JsonStream``, a small pull parser that walks a huge JSON document (a Telegram or
Discord export of a whole account) one element at a time, so memory stays bounded.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .records import ExportError

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """Zip-bomb limits. Chat JSON compresses 10-30x; 200x only happens on purpose."""

    max_total_bytes: int = 64 * GIB  # sum of the members' uncompressed sizes
    max_ratio: float = 200.0  # uncompressed / compressed size of one member
    ratio_floor_bytes: int = MIB  # smaller members are exempt: tiny files compress absurdly well
    max_members: int = 5_000_000


def human_size(n: float) -> str:
    """1536 -> "1.5 KiB": sizes in messages people read."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


_TRUNCATED = "{name} is an incomplete zip file (it may be truncated: try downloading it again)."
_DRIVE = re.compile(r"^[A-Za-z]:")
# Junk that macOS and Windows add when someone re-zips an unpacked export.
_JUNK = re.compile(r"(^|/)(__MACOSX/|\._|\.DS_Store$|Thumbs\.db$)")


def _clean_member_name(raw: str, archive_name: str) -> str:
    name = raw.replace("\\", "/")  # zips made on Windows sometimes use backslashes
    parts = PurePosixPath(name).parts
    if name.startswith("/") or _DRIVE.match(name) or ".." in parts:
        raise ExportError(
            f"{archive_name} contains a file with an unsafe path ({raw!r}), so joe will not read "
            "it. Upload the export exactly as the app produced it."
        )
    return "/".join(p for p in parts if p not in ("", "."))


class Archive:
    """A zip or folder as a flat, sorted list of file paths ("general/2020-01-01.json")."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name

    @property
    def members(self) -> list[str]:
        raise NotImplementedError

    def size(self, member: str) -> int:
        raise NotImplementedError

    def open(self, member: str) -> IO[bytes]:
        """A binary stream of one member; raises ExportError if it is missing."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying file."""

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_bytes(self, member: str) -> bytes:
        with self.open(member) as stream:
            return stream.read()

    def read_json(self, member: str) -> Any:
        """Parse one member as UTF-8 JSON, with a clear error for bad bytes or bad syntax."""
        return parse_json_bytes(self.read_bytes(member), member)

    def _missing(self, member: str) -> ExportError:
        return ExportError(f"{self.name} has no file named {member}.")


class ZipArchive(Archive):
    def __init__(self, path: Path, limits: Limits) -> None:
        super().__init__(path)
        try:
            self._zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise ExportError(_TRUNCATED.format(name=self.name)) from exc
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._sorted: list[str] = []
        try:
            self._check(limits)
        except ExportError:
            self._zip.close()
            raise

    def _check(self, limits: Limits) -> None:
        infos = self._zip.infolist()
        if len(infos) > limits.max_members:
            raise ExportError(
                f"{self.name} holds {len(infos):,} files, more than the limit of "
                f"{limits.max_members:,}."
            )
        total = 0
        for info in infos:
            name = _clean_member_name(info.filename, self.name)
            if info.is_dir() or not name or _JUNK.search(name):
                continue
            total += info.file_size
            if total > limits.max_total_bytes:
                raise ExportError(
                    f"{self.name} would unpack to more than {human_size(limits.max_total_bytes)}, "
                    "the limit for one upload; it looks like a zip bomb."
                )
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size >= limits.ratio_floor_bytes and ratio > limits.max_ratio:
                raise ExportError(
                    f"{self.name} looks like a zip bomb: {name} is compressed {ratio:.0f} times "
                    f"(the limit is {limits.max_ratio:g})."
                )
            if info.flag_bits & 0x1:
                raise ExportError(f"{self.name} is password-protected; upload an unencrypted zip.")
            self._infos[name] = info

    @property
    def members(self) -> list[str]:
        if len(self._sorted) != len(self._infos):
            self._sorted = sorted(self._infos)
        return self._sorted

    def size(self, member: str) -> int:
        return self._infos[member].file_size

    def open(self, member: str) -> IO[bytes]:
        info = self._infos.get(member)
        if info is None:
            raise self._missing(member)
        try:
            return self._zip.open(info)
        except NotImplementedError as exc:  # Deflate64 from Windows Explorer, for example
            raise ExportError(
                f"{self.name} uses a compression method joe cannot read ({exc}); re-create the "
                "zip with a standard zip tool."
            ) from exc

    def read_bytes(self, member: str) -> bytes:
        try:
            return super().read_bytes(member)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ExportError(
                f"{member} in {self.name} is damaged ({exc}); try downloading the export again."
            ) from exc

    def close(self) -> None:
        self._zip.close()


class FolderArchive(Archive):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._root = path.resolve()
        files: list[str] = []
        for dirpath, _dirs, names in os.walk(self._root):
            for file_name in names:
                rel = Path(dirpath, file_name).relative_to(self._root).as_posix()
                if not _JUNK.search(rel):
                    files.append(rel)
        self._files = sorted(files)
        self._known = set(files)

    @property
    def members(self) -> list[str]:
        return self._files

    def _real(self, member: str) -> Path:
        if member not in self._known:
            raise self._missing(member)
        real = (self._root / member).resolve()
        if not real.is_relative_to(self._root):  # a symlink out of the folder
            raise ExportError(f"{member} in {self.name} points outside the export folder.")
        return real

    def size(self, member: str) -> int:
        return self._real(member).stat().st_size

    def open(self, member: str) -> IO[bytes]:
        return self._real(member).open("rb")


def existing(path: str | os.PathLike[str]) -> Path:
    """The export's path, or the sentence every parser gives for a missing one."""
    p = Path(path)
    if not p.exists():
        raise ExportError(f"The export {p.name} could not be found.")
    return p


def time_zone(name: str) -> ZoneInfo:
    """The zone an export's local times are read in (WhatsApp, Telegram and sigexport omit it)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ExportError(f"{name!r} is not a time zone name joe knows.") from exc


def open_archive(path: str | os.PathLike[str], limits: Limits | None = None) -> Archive:
    """Open a zip file or an unpacked folder; raise ExportError for anything else."""
    p = Path(path)
    if p.is_dir():
        return FolderArchive(p)
    if not p.is_file():
        raise ExportError(f"The export {p.name} could not be found.")
    if not zipfile.is_zipfile(p):
        with p.open("rb") as head:
            if head.read(4) == b"PK\x03\x04":  # a zip whose end (the directory) is missing
                raise ExportError(_TRUNCATED.format(name=p.name))
        raise ExportError(f"{p.name} is not a zip file or a folder.")
    return ZipArchive(p, limits or Limits())


def is_zip(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return p.is_file() and zipfile.is_zipfile(p)


def decode_text(data: bytes, label: str) -> str:
    """Decode UTF-8 (a BOM is tolerated), or say which file is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExportError(
            f"{label} is not UTF-8 text (bad byte at position {exc.start}); the export may be "
            "damaged or re-saved in another encoding."
        ) from exc


def parse_json_bytes(data: bytes, label: str) -> Any:
    try:
        return json.loads(decode_text(data, label))
    except json.JSONDecodeError as exc:
        raise ExportError(
            f"{label} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "the export may be incomplete."
        ) from exc


_ENDS_EARLY = "the file ends too early"


class JsonStream:
    """Pull parser over a JSON text stream: walk containers, materialise only small values.

    Use ``items()`` on an object to get its keys one by one (the stream is then positioned on the
    value: call ``value()``, ``items()`` or ``elements()`` before asking for the next key), and
    ``elements()`` on an array. Values left untouched are skipped; a nested ``items()`` or
    ``elements()`` must be run to its end before the outer one goes on.
    """

    _CHUNK = 1 << 16

    def __init__(self, binary: IO[bytes], label: str) -> None:
        self._text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict")
        self._label = label
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._decoder = json.JSONDecoder()
        self._reads = 0  # bumped whenever a value starts being consumed, to know what to skip

    def _fill(self) -> bool:
        if self._eof:
            return False
        # Grow reads with the pending text so decoding one big value stays linear, not quadratic.
        want = max(self._CHUNK, len(self._buf) - self._pos)
        try:
            chunk = self._text.read(want)
        except UnicodeDecodeError as exc:
            raise ExportError(f"{self._label} is not UTF-8 text.") from exc
        if not chunk:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def _error(self, what: str) -> ExportError:
        return ExportError(
            f"{self._label} is not valid JSON ({what}); the export may be incomplete."
        )

    def _peek(self) -> str:
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def _expect(self, char: str) -> None:
        found = self._peek()
        if not found:
            raise self._error(_ENDS_EARLY)
        if found != char:
            raise self._error(f"expected {char!r}, found {found!r}")
        self._pos += 1

    def value(self) -> Any:
        """Read the whole value at the current position."""
        self._peek()
        self._reads += 1
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._fill():
                    continue
                # A file cut in the middle of a string or at its very end is a truncated export.
                cut = exc.pos >= len(self._buf.rstrip()) or exc.msg.startswith("Unterminated")
                raise self._error(_ENDS_EARLY if cut else exc.msg) from exc
            # A number cut at the end of the buffer would decode as a shorter number.
            if end == len(self._buf) and self._fill():
                continue
            self._pos = end
            return value

    def kind(self) -> str:
        """ "object", "array" or "scalar" for the value at the current position."""
        char = self._peek()
        return {"{": "object", "[": "array"}.get(char, "scalar")

    def items(self) -> Iterator[str]:
        self._expect("{")
        self._reads += 1
        if self._peek() == "}":
            self._pos += 1
            return
        while True:
            key = self.value()
            if not isinstance(key, str):
                raise self._error("an object key is not a string")
            self._expect(":")
            before = self._reads
            yield key
            if self._reads == before:
                self.value()
            char = self._peek()
            self._pos += 1
            if char == "}":
                return
            if char != ",":
                raise self._error(f"expected ',' or '}}', found {char!r}" if char else _ENDS_EARLY)

    def elements(self) -> Iterator[None]:
        self._expect("[")
        self._reads += 1
        if self._peek() == "]":
            self._pos += 1
            return
        while True:
            before = self._reads
            yield None
            if self._reads == before:
                self.value()
            char = self._peek()
            self._pos += 1
            if char == "]":
                return
            if char != ",":
                raise self._error(f"expected ',' or ']', found {char!r}" if char else _ENDS_EARLY)
