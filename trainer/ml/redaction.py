"""Replacing personal data in message text before it reaches a tokenizer, a page or a game.

No torch here: web processes import this (the Real-or-fake game, the redaction preview);
``trainer.ml.data`` uses it for training.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class RedactionConfig:
    """What to replace before the text ever reaches the tokenizer."""

    enabled: bool = True
    emails: bool = True
    phones: bool = True
    urls: bool = True
    words: tuple[str, ...] = ()  # names, addresses... matched case-insensitively as whole words


_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# A run of digits with phone-like separators; checked below for 7-15 digits (E.164 length).
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d\s().-]{5,}\d(?!\w)")
# Numbers people write that the pattern above also matches; none of them is a phone number.
_NOT_PHONES = (
    re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}"),  # a date: 12/05/2023, 2024-03-01
    re.compile(r"(?:1[89]|20)\d\d\s*[-–—]\s*(?:1[89]|20)\d\d"),  # years: 1998-2004
    re.compile(r"\d+\.\d+"),  # a decimal: 3.14159265, 100.0000
    # Small numbers in a row (4 8 15 16 23 42); a number written in pairs starts with its
    # trunk 0 (06 12 34 56 78) or its country code (+33 6 12 34 56 78).
    re.compile(r"(?!0)\d{1,2}(?:\s+\d{1,2})+"),
)
# A number in groups of three or not (1000000, 10 000 000, 2,500,000) is round when zeros follow
# its first three digits at most; 555 123 4000 is a phone number.
_GROUPED = re.compile(r"[1-9]\d{0,2}(?:[ ,.]?\d{3})+")
_ROUND = re.compile(r"[1-9]\d{0,2}0{3,}")
# A percentage: "45.5%", "100.0000 percent".
_PERCENT = re.compile(r"\s*(?:%|per\s?cent\b)", re.IGNORECASE)


def _is_phone(text: str, after: str = "") -> bool:
    digits = sum(c.isdigit() for c in text)
    if not 7 <= digits <= 15 or _PERCENT.match(after):
        return False
    number = text.strip()
    if _GROUPED.fullmatch(number) and _ROUND.fullmatch(re.sub(r"\D", "", number)):
        return False
    return not any(pattern.fullmatch(number) for pattern in _NOT_PHONES)


class Redactor:
    """Replaces PII with placeholders (``<email>``, ``<phone>``, ``<url>``, ``<redacted>``)."""

    def __init__(self, config: RedactionConfig) -> None:
        self.config = config
        self.counts: Counter[str] = Counter()
        words = sorted({w.strip() for w in config.words if w.strip()}, key=len, reverse=True)
        # Longest first so "Jane Doe" wins over "Jane"; lookarounds rather than \b so words that
        # start or end with punctuation still match.
        self._words = (
            re.compile(
                r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE
            )
            if words
            else None
        )

    def __call__(self, text: str) -> str:
        if not self.config.enabled:
            return text
        # URLs first: they often contain digits and @ that the other patterns would half-eat.
        if self.config.urls:
            text = _URL.sub(self._url, text)
        if self.config.emails:
            text = self._sub(_EMAIL, "<email>", text, "emails")
        if self.config.phones:
            text = _PHONE.sub(self._phone, text)
        if self._words is not None:
            text = self._sub(self._words, "<redacted>", text, "words")
        return text

    def _url(self, match: re.Match[str]) -> str:
        # Sentence punctuation right after a link ("see https://x.y/z, ok") is not part of it.
        url = match.group(0)
        core = url.rstrip(".,;:!?)]}")
        self.counts["urls"] += 1
        return "<url>" + url[len(core) :]

    def _phone(self, match: re.Match[str]) -> str:
        if not _is_phone(match.group(0), match.string[match.end() :]):
            return match.group(0)  # a date, a year span, an amount, a short number: leave it
        self.counts["phones"] += 1
        return "<phone>"

    def _sub(self, pattern: re.Pattern[str], placeholder: str, text: str, kind: str) -> str:
        text, n = pattern.subn(placeholder, text)
        if n:
            self.counts[kind] += n
        return text


def redact(text: str, config: RedactionConfig | None = None) -> str:
    """Redact one string (convenience for generation-side filters and tests)."""
    return Redactor(config or RedactionConfig())(text)
