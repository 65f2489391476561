"""Who might be the same person: speakers whose names match across chat apps.

Pure functions over speakers already loaded with their identities (no queries of their own).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ingest.models import Speaker

MAX_SUGGESTIONS = 20


@dataclass(frozen=True)
class MergeSuggestion:
    speaker: Speaker
    other: Speaker
    reason: str


def normalise(name: str) -> str:
    """Lower case, accents and punctuation off: "Zoë-Ann " → "zoe ann"."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join("".join(c if c.isalnum() else " " for c in plain).split())


def _names(speaker: Speaker) -> set[str]:
    names = {normalise(speaker.display_name)}
    for identity in speaker.identities.all():
        names.update((normalise(identity.display_name), normalise(identity.full_name)))
    return {n for n in names if n}


def matches(speaker: Speaker, query: str) -> bool:
    """Whether the speaker, or one of their identities, goes by a name holding ``query``
    (compared as ``normalise`` does: "zoe" finds "Zoë-Ann")."""
    wanted = normalise(query)
    return any(wanted in name for name in _names(speaker))


def merge_suggestions(speakers: Sequence[Speaker]) -> list[MergeSuggestion]:
    """Pairs of speakers that are probably one friend on two apps: the same name, or the same
    first name, and no app in common (two people on one app are two people), nor two members,
    nor two that staff told apart."""
    profiles = []
    apart = {(s.pk, other.pk) for s in speakers for other in s.not_same_as.all()}
    for speaker in speakers:
        identities = list(speaker.identities.all())
        if not identities or all(i.is_bot or i.excluded for i in identities):
            continue
        names = _names(speaker)
        firsts = {n.split()[0] for n in names if len(n.split()[0]) >= 3}
        profiles.append((speaker, {i.source_kind for i in identities}, names, firsts))
    suggestions = []
    for index, (speaker, sources, names, firsts) in enumerate(profiles):
        for other, other_sources, other_names, other_firsts in profiles[index + 1 :]:
            if sources & other_sources or (speaker.pk, other.pk) in apart:
                continue
            if speaker.member_id and other.member_id and speaker.member_id != other.member_id:
                continue  # two members are two friends: a merge would be refused
            if same := sorted(names & other_names):
                reason = f"both are called “{same[0]}”"
            elif same := sorted(firsts & other_firsts):
                reason = f"same first name, “{same[0]}”"
            else:
                continue
            suggestions.append(MergeSuggestion(speaker, other, reason))
            if len(suggestions) >= MAX_SUGGESTIONS:
                return suggestions
    return suggestions
