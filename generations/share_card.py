"""The 1200×630 PNG a link preview shows for a shared snippet, drawn with Pillow and DejaVu Sans."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from generations.models import Bubble

WIDTH, HEIGHT = 1200, 630
FONTS = Path(__file__).resolve().parent / "fonts"
PAD = 56
AVATAR = 64
GAP = 22
BACKGROUND = "#f6f4ef"
BUBBLE = "#ffffff"
LINE = "#e3e0d8"
INK = "#1d1d1f"
MUTED = "#6b6b70"
TEXT_SIZES = (44, 38, 32, 28, 24)
MORE_H = 34  # the row under a snippet cut short: "+N more lines", or that a message goes on
CONTINUED = "… (continued on the page)"
# Part of the card's ETag and cache key (views_gallery.share_image): raised whenever the card
# says or draws something else, so one drawn before is not served again from a cache.
VERSION = 3


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(FONTS / name), size)


def wrap(text: str, face: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap by pixel width; words longer than a line are cut by characters."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if face.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while face.getlength(word) > width:
                cut = _fitting_prefix(word, face, width)
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def _fitting_prefix(word: str, face: ImageFont.FreeTypeFont, width: int) -> int:
    """How many of the word's characters fit in `width` (at least one), by bisection: trying
    every shorter prefix measured a model's 1,000-character "hahaha…" some 15,000 times."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if face.getlength(word[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def fit(text: str, face: ImageFont.FreeTypeFont, width: int) -> str:
    """One line no wider than `width`: cut with an ellipsis if it is (a long name, many voices)."""
    # A name may hold a line break or another separator, which Pillow cannot lay out on one line.
    text = " ".join(text.splitlines())
    if face.getlength(text) <= width:
        return text
    while text and face.getlength(text.rstrip() + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _ending(line: str, face: ImageFont.FreeTypeFont, width: int) -> str:
    """The last line shown of a cut bubble, with " …" after it, no wider than `width`: a full
    line (a long word's) loses the few characters the ellipsis needs."""
    line = line.rstrip()
    while line and face.getlength(line + " …") > width:
        line = line[:-1].rstrip()
    return line + " …"


def _layout(bubbles: list[Bubble], size: int, text_width: int) -> list[list[str]]:
    face = font(size)
    return [wrap(bubble.text, face, text_width) for bubble in bubbles]


def _height(wrapped: list[list[str]], size: int) -> int:
    name_h = 34
    return sum(name_h + len(lines) * int(size * 1.25) + 28 + GAP for lines in wrapped) - GAP


def render_card(*, bubbles: list[Bubble], label: str, conversation: bool = False) -> bytes:
    """Draw the snippet as chat bubbles under its "AI parody of ..." label; PNG bytes.

    A conversation too long for the card shows its first lines and says how many more the
    link's page holds; a message cut short says it goes on there."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    label = fit(label, font(30, bold=True), WIDTH - 2 * PAD)
    draw.text((PAD, PAD - 16), label, font=font(30, bold=True), fill=MUTED)
    what = "conversation" if conversation else "message"
    footer = f"joe · AI-generated parody, not a real {what}"
    draw.text((PAD, HEIGHT - PAD + 4), footer, font=font(22), fill=MUTED)

    top, bottom = PAD + 44, HEIGHT - PAD - 16
    text_left = PAD + AVATAR + 20 + 22
    text_width = WIDTH - PAD - text_left - 22
    size = TEXT_SIZES[-1]
    for size in TEXT_SIZES:
        wrapped = _layout(bubbles, size, text_width)
        if _height(wrapped, size) <= bottom - top:
            break
    else:
        bottom -= MORE_H  # not all of it fits: keep a row to say what is left out
    leading = int(size * 1.25)

    y = top
    drawn = 0
    cut = False
    for bubble, lines in zip(bubbles, wrapped, strict=True):
        room = (bottom - y - 34 - 28) // leading
        if room < 1:
            break
        drawn += 1
        if len(lines) > room:
            cut = True
            lines = lines[: room - 1] + [_ending(lines[room - 1], font(size), text_width)]
        box_h = 34 + len(lines) * leading + 22
        name = fit(bubble.name, font(24, bold=True), text_width)
        draw.ellipse((PAD, y, PAD + AVATAR, y + AVATAR), fill=bubble.colour)
        initial = font(30, bold=True)
        draw.text(
            (PAD + AVATAR / 2, y + AVATAR / 2),
            bubble.initial,
            font=initial,
            fill="#ffffff",
            anchor="mm",
        )
        widest = max(
            [font(size).getlength(line) for line in lines] + [font(24, bold=True).getlength(name)]
        )
        box = (PAD + AVATAR + 20, y, PAD + AVATAR + 20 + widest + 44, y + box_h)
        draw.rounded_rectangle(box, radius=26, fill=BUBBLE, outline=LINE, width=2)
        draw.text((text_left, y + 10), name, font=font(24, bold=True), fill=bubble.colour)
        for i, line in enumerate(lines):
            draw.text((text_left, y + 44 + i * leading), line, font=font(size), fill=INK)
        y += box_h + GAP

    if more := len(bubbles) - drawn:
        note = f"+{more} more line{'s' if more > 1 else ''}"
        draw.text((PAD + AVATAR + 20, y), note, font=font(24, bold=True), fill=MUTED)
    elif cut:
        draw.text((PAD + AVATAR + 20, y), CONTINUED, font=font(24, bold=True), fill=MUTED)

    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
