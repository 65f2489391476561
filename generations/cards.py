"""Gallery cards drawn once per state and reused, so a page of twenty is joins, not rendering.

A card shows only what `card_key` lists: the snippet's lines as bubbles (names and colours as
they are now), kind, status, counts, and the viewer's own vote, star and staff flag. The key is
the state itself, never a version to bump, so an edit, a rename or a vote simply makes a new key
and the old card is never shown again. The two strings that change with every request, the
CSRF token and the `next` URL of the page, are stand-ins in the cached HTML, swapped in per page.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from types import SimpleNamespace

from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import get_template
from django.utils import translation
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from generations.models import Snippet

CARD_TEMPLATE = "generations/gallery.html#card"
MAX_CARDS = 4096  # ~3 KB each: a few MB per web process
# Random per process, so no snippet text can contain them (the cache is per process too).
_NEXT_MARK = f"joe-next-{secrets.token_hex(12)}"
_CSRF_MARK = f"joe-csrf-{secrets.token_hex(12)}"


def card_key(snippet: Snippet, *, staff: bool, language: str) -> tuple:
    """Everything a card shows; `snippet` must be dressed (selectors.dress)."""
    return (
        snippet.pk,
        snippet.kind,
        snippet.status,
        tuple(snippet.bubble_list),
        snippet.upvotes,
        snippet.downvotes,
        snippet.score,
        snippet.my_vote,
        snippet.is_favourite,
        staff,
        language,
    )


class CardCache:
    """The newest MAX_CARDS cards of this process; oldest out first. Safe across threads."""

    def __init__(self, size: int = MAX_CARDS) -> None:
        self.size = size
        self._cards: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple) -> str | None:
        return self._cards.get(key)

    def put(self, key: tuple, html: str) -> None:
        with self._lock:
            while len(self._cards) >= self.size:
                del self._cards[next(iter(self._cards))]
            self._cards[key] = html

    def clear(self) -> None:
        with self._lock:
            self._cards.clear()

    def __len__(self) -> int:
        return len(self._cards)


cache = CardCache()


def render_cards(
    request: HttpRequest, snippets: Iterable[Snippet], *, next_url: str
) -> list[SafeString]:
    """The card of each dressed snippet, as this member sees it now, for this page."""
    staff = bool(request.user.is_staff)
    language = translation.get_language()
    template = None
    csrf_token, next_html = get_token(request), escape(next_url)
    cards = []
    for snippet in snippets:
        key = card_key(snippet, staff=staff, language=language)
        html = cache.get(key)
        if html is None:
            template = template or get_template(CARD_TEMPLATE)
            context = {
                "snippet": snippet,
                # Only what the key holds: a card that read more of the member would go stale.
                "user": SimpleNamespace(is_staff=staff),
                "next_url": _NEXT_MARK,
                "csrf_token": _CSRF_MARK,
            }
            html = template.render(context)
            cache.put(key, html)
        html = html.replace(_NEXT_MARK, next_html).replace(_CSRF_MARK, csrf_token)
        cards.append(mark_safe(html))  # noqa: S308  (template output, and two escaped strings)
    return cards
