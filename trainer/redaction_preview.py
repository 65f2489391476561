"""Preview what redaction does to real corpus messages before a run trains on them."""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from accounts.decorators import staff_required
from trainer.corpus import trainable_messages

SCAN_LIMIT = 20_000  # messages looked at per preview: enough to find examples, fast on any corpus
SHOW = 8
# Cheap prefilters in the database: messages that could hold each kind of personal data. The
# phone one is the redactor's own pattern without its lookarounds (06 12 34 56 78 has no three
# digits in a row); it reads the same to PostgreSQL and to Python.
KINDS = (
    ("emails", "@", "an email address"),
    ("phones", r"\d[\d\s().-]{5,}\d", "a phone number"),
    ("urls", r"https?://|www\.", "a link"),
)


def redaction_from_post(post) -> dict:
    words = [w.strip() for w in re.split(r"[,\n]", post.get("redact_words", "")) if w.strip()]
    return {
        "enabled": post.get("redact") == "on",
        "emails": post.get("redact_emails") == "on",
        "phones": post.get("redact_phones") == "on",
        "urls": post.get("redact_urls") == "on",
        "words": tuple(words),
    }


def candidate_pattern(redaction: dict) -> str | None:
    """What a message must contain to be worth running the redactor on; None: nothing can
    change (no kind ticked, no words)."""
    parts = [pattern for kind, pattern, _ in KINDS if redaction[kind]]
    parts += map(re.escape, redaction["words"])
    return "(" + "|".join(parts) + ")" if parts else None


def preview_rows(redaction: dict, limit: int = SHOW) -> tuple[list[dict], int]:
    """Up to `limit` real messages that the settings change, as (before, after) pairs, and how
    many candidate messages were looked at to find them."""
    from trainer.ml.redaction import RedactionConfig, Redactor

    pattern = candidate_pattern(redaction)
    if pattern is None:
        return [], 0
    redactor = Redactor(RedactionConfig(**redaction))
    rows, scanned = [], 0
    texts = (
        trainable_messages()
        .filter(text__iregex=pattern)
        .order_by("-sent_at")
        .values_list("identity__speaker__display_name", "text")[:SCAN_LIMIT]
    )
    for name, text in texts.iterator(chunk_size=2000):
        scanned += 1
        after = redactor(text)
        if after != text:
            rows.append({"speaker": name, "before": text, "after": after})
            if len(rows) >= limit:
                break
    return rows, scanned


def _or_list(items: list[str]) -> str:
    """The items as English: a; a or b; a, b or c."""
    return " or ".join(filter(None, [", ".join(items[:-1]), items[-1]])) if items else ""


def _looked_for(redaction: dict) -> str:
    """What the messages looked at could contain, completing "messages that could ...":
    "hold an email address or a link, or mention one of the 2 words you listed"."""
    kinds = _or_list([label for kind, _, label in KINDS if redaction[kind]])
    count = len(redaction["words"])
    words = ""
    if count:
        words = "the word you listed" if count == 1 else f"one of the {count} words you listed"
    if kinds and words:
        return f"hold {kinds}, or mention {words}"
    return f"hold {kinds}" if kinds else f"mention {words}"


def summary(redaction: dict, rows: list[dict], scanned: int) -> str:
    """A sentence that is true for these settings and this corpus when no example shows."""
    if not redaction["enabled"] or rows:
        return ""
    if not any(redaction[kind] for kind, _, _ in KINDS) and not redaction["words"]:
        return (
            "Redaction is on, but nothing is chosen: tick a kind of personal data or list words "
            "to redact, or the model sees every message as written."
        )
    if not scanned:
        if not trainable_messages().exists():
            return (
                "There are no messages to train on yet, so there is nothing to preview: upload "
                "an export and map its people to speakers first."
            )
        looked_for = _looked_for(redaction)
        return f"No message in the corpus could {looked_for}: these settings change nothing."
    looked_for = _looked_for(redaction)
    if scanned == 1:
        sentence = f"The one message that could {looked_for} would not change"
    elif scanned >= SCAN_LIMIT:
        sentence = (
            f"None of the {scanned:,} most recent messages that could {looked_for} would change"
        )
    else:
        sentence = f"None of the {scanned:,} messages that could {looked_for} would change"
    if redaction["words"]:
        sentence += " (a listed word counts only on its own, not inside a longer word)"
    return sentence + "."


@staff_required
@require_POST
def redaction_preview(request: HttpRequest) -> HttpResponse:
    redaction = redaction_from_post(request.POST)
    rows, scanned = preview_rows(redaction) if redaction["enabled"] else ([], 0)
    context = {
        "enabled": redaction["enabled"],
        "rows": rows,
        "summary": summary(redaction, rows, scanned),
    }
    return render(request, "trainer/redaction_preview.html", context)
