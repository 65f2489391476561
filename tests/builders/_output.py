"""Where builders write: a zip (members streamed one at a time) or a plain folder."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import IO


class ExportWriter:
    """Write files into a zip or a folder with the same calls; use as a context manager."""

    def __init__(self, target: Path, *, as_zip: bool, root: str = "") -> None:
        self.target = target
        self.prefix = f"{root}/" if root else ""  # nest everything under one folder
        self.replaced: set[str] = set()  # names a test writes by hand: generated content is dropped
        self.as_zip = as_zip
        self._zip: zipfile.ZipFile | None = None
        if as_zip:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._zip = zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED)
        else:
            target.mkdir(parents=True, exist_ok=True)

    def open(self, name: str) -> IO[bytes]:
        if name in self.replaced:
            return io.BytesIO()
        name = self.prefix + name
        if self._zip is not None:
            return self._zip.open(name, "w", force_zip64=True)
        path = self.target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("wb")

    def write(self, name: str, data: bytes | str) -> None:
        with self.open(name) as out:
            out.write(data.encode() if isinstance(data, str) else data)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> ExportWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
