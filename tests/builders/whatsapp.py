"""Build WhatsApp "Export chat" files from (when, sender, text) triples.

    build_whatsapp(tmp_path / "WhatsApp Chat with Bob.txt", [(when, "Bob", "hi"), ...],
                   platform="ios", order="dmy", clock=12)

``sender`` None writes a system line. ``locale`` picks a layout some countries' phones use instead
(see ``LOCALES``): the markers before the time in Chinese, Japanese and Korean, "à" in French.
Lines are written one at a time, so a benchmark can stream millions of messages. ``.zip`` targets
get the text as ``_chat.txt`` (iOS) or under the chat's name (Android), next to a fake photo.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

Line = tuple[dt.datetime, str | None, str]
LRM = "\u200e"
NNBSP = "\u202f"
# locale -> (date format, morning marker, afternoon marker); markers go before a 12-hour time.
LOCALES = {
    "zh": ("{y}/{m}/{d}", "上午", "下午"),  # Taiwan/Hong Kong Android: 2023/5/4 下午3:15
    "ja": ("{y}/{mm}/{dd}", "午前", "午後"),  # 2020/01/15 午後3:21
    "ko": ("{y}. {m}. {d}.", "오전 ", "오후 "),  # 2020. 1. 15. 오후 3:21
    "fr": ("{dd}/{mm}/{y} à", "", ""),  # 26/09/2019 à 22:39
}


def _locale_stamp(when: dt.datetime, locale: str, platform: str) -> str:
    date_format, am, pm = LOCALES[locale]
    date = date_format.format(y=when.year, m=when.month, d=when.day, mm=f"{when.month:02d}",
                              dd=f"{when.day:02d}")  # fmt: skip
    if am:
        time = (pm if when.hour >= 12 else am) + f"{when.hour % 12 or 12}:{when.minute:02d}"
    else:
        time = f"{when.hour:02d}:{when.minute:02d}"
    if platform == "ios":
        return f"[{date} {time}:{when.second:02d}] "
    return f"{date} {time} - "


def stamp(
    when: dt.datetime, *, platform: str, order: str, clock: int, ampm: str, locale: str = ""
) -> str:
    """The date-time prefix of a line, as that platform and locale write it."""
    if locale:
        return _locale_stamp(when, locale, platform)
    year2 = f"{when.year % 100:02d}"
    year = str(when.year) if platform == "ios" else year2
    day, month = f"{when.day:02d}", f"{when.month:02d}"
    if platform == "android" and order == "mdy":  # US Android drops leading zeros
        day, month = str(when.day), str(when.month)
    date = {
        "dmy": f"{day}/{month}/{year}",
        "mdy": f"{month}/{day}/{year}",
        "ymd": f"{when.year}-{month}-{day}",
    }[order]
    if clock == 12:
        hour = when.hour % 12 or 12
        am, pm = ampm.split("|")
        time = f"{hour}:{when.minute:02d}"
        if platform == "ios":
            time += f":{when.second:02d}"
        time += NNBSP + (pm if when.hour >= 12 else am)
    else:
        time = f"{when.hour:02d}:{when.minute:02d}"
        if platform == "ios":
            time += f":{when.second:02d}"
    return f"[{date}, {time}] " if platform == "ios" else f"{date}, {time} - "


def write_lines(
    out: IO[bytes],
    lines: Iterable[Line],
    *,
    platform: str = "android",
    order: str = "dmy",
    clock: int = 24,
    ampm: str = "AM|PM",
    group: str = "Friends",
    locale: str = "",
) -> None:
    newline = "\r\n" if platform == "ios" else "\n"
    for when, sender, text in lines:
        head = stamp(when, platform=platform, order=order, clock=clock, ampm=ampm, locale=locale)
        if sender is None:  # iOS attributes notices to the group, behind a LRM
            body = f"{group}: {LRM}{text}" if platform == "ios" else text
        else:
            body = f"{sender}: {text}"
        out.write((head + body.replace("\n", newline) + newline).encode())


def build_whatsapp(
    target: Path,
    lines: Iterable[Line],
    *,
    platform: str = "android",
    order: str = "dmy",
    clock: int = 24,
    ampm: str = "AM|PM",
    bom: bool = False,
    locale: str = "",
) -> Path:
    options = {"platform": platform, "order": order, "clock": clock, "ampm": ampm,
               "locale": locale}  # fmt: skip
    if target.suffix != ".zip":
        with target.open("wb") as out:
            out.write(b"\xef\xbb\xbf" if bom else b"")
            write_lines(out, lines, **options)
        return target
    inner = "_chat.txt" if platform == "ios" else f"{target.stem}.txt"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(inner, "w") as out:
            write_lines(out, lines, **options)
        z.writestr("IMG-20240101-WA0001.jpg", b"\xff\xd8\xff\xe0 not really a photo")
    return target
