"""Small builders for gallery tests: speakers and snippets made straight through the models."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.text import slugify

from generations.models import Snippet, SnippetStatus
from ingest.models import Speaker


def make_speaker(name: str, **fields) -> Speaker:
    return Speaker.objects.create(
        display_name=name, slug=fields.pop("slug", slugify(name)), **fields
    )


def make_snippet(
    *lines: tuple[Speaker, str],
    status: str = SnippetStatus.PUBLISHED,
    age: timedelta = timedelta(0),
    created_at: datetime | None = None,
    **fields,
) -> Snippet:
    """make_snippet((ann, "hi"), (bo, "hey")): one line is a message, more a conversation."""
    created = created_at or timezone.now() - age
    snippet = Snippet.objects.create(
        kind=Snippet.Kind.CONVERSATION if len(lines) > 1 else Snippet.Kind.MESSAGE,
        speaker=lines[0][0],
        lines=[{"speaker": s.slug, "name": s.display_name, "text": t} for s, t in lines],
        text="\n".join(t for _, t in lines),
        status=status,
        created_at=created,
        published_at=created if status == SnippetStatus.PUBLISHED else None,
        **fields,
    )
    snippet.speakers.set({s for s, _ in lines})
    return snippet
