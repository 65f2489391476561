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
# Cheap prefilter in the database: messages that could hold an address, a number or a link.
CANDIDATES = r"(@|https?://|www\.|[0-9]{3})"


def redaction_from_post(post) -> dict:
    words = [w.strip() for w in re.split(r"[,\n]", post.get("redact_words", "")) if w.strip()]
    return {
        "enabled": post.get("redact") == "on",
        "emails": post.get("redact_emails") == "on",
        "phones": post.get("redact_phones") == "on",
        "urls": post.get("redact_urls") == "on",
        "words": tuple(words),
    }


def preview_rows(redaction: dict, limit: int = SHOW) -> tuple[list[dict], int]:
    """Up to `limit` real messages that the settings change, as (before, after) pairs."""
    from trainer.ml.redaction import RedactionConfig, Redactor

    redactor = Redactor(RedactionConfig(**redaction))
    pattern = CANDIDATES
    if redaction["words"]:
        pattern = "(" + "|".join([CANDIDATES, *map(re.escape, redaction["words"])]) + ")"
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


@staff_required
@require_POST
def redaction_preview(request: HttpRequest) -> HttpResponse:
    redaction = redaction_from_post(request.POST)
    rows, scanned = preview_rows(redaction) if redaction["enabled"] else ([], 0)
    context = {"rows": rows, "scanned": scanned, "enabled": redaction["enabled"]}
    return render(request, "trainer/redaction_preview.html", context)
