"""The main navigation: links appear as the apps that own them register their URL names."""

from __future__ import annotations

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()

MEMBER_LINKS = [
    ("generations:gallery", "Gallery"),
    ("generations:live", "Live"),
    ("generations:favourites", "Favourites"),
    ("generations:leaderboards", "Leaderboards"),
    ("generations:game", "Real or fake?"),
    ("profile", "Me"),
]
STAFF_LINKS = [
    ("ingest:exports", "Exports"),
    ("ingest:speakers", "Speakers"),
    ("trainer:runs", "Training"),
    ("generations:batches", "Batches"),
    ("generations:triage", "Triage"),
    ("invites", "Invites"),
    ("claims", "Claims"),
    ("admin:index", "Admin"),
]


def _reachable(links: list[tuple[str, str]]) -> list[dict]:
    items = []
    for name, label in links:
        try:
            items.append({"url": reverse(name), "label": label})
        except NoReverseMatch:
            continue  # that feature's app has not registered the page
    return items


@register.filter
def nav_items(user) -> list[dict]:
    """The member links, shown in the bar."""
    return _reachable(MEMBER_LINKS)


@register.filter
def staff_nav_items(user) -> list[dict]:
    """Staff's links, kept in one menu so the bar fits on one line (none for a member)."""
    return _reachable(STAFF_LINKS) if user.is_staff else []
