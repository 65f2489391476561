"""What training may read: the corpus minus everyone who said no.

The one place that decides which messages reach a model. Opted-out speakers, excluded identities,
bots and identities not mapped to a speaker never leave the database for training.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.db.models import Count, QuerySet

from ingest.models import Message, Speaker
from trainer.ml.chat_format import ChatFormat

if TYPE_CHECKING:
    from trainer.ml.data import CorpusMessage


def trainable_messages() -> QuerySet[Message]:
    return Message.objects.filter(
        identity__speaker__isnull=False,
        identity__speaker__opted_out=False,
        identity__excluded=False,
        identity__is_bot=False,
    )


def trainable_speakers() -> QuerySet[Speaker]:
    return Speaker.objects.filter(
        opted_out=False, pk__in=trainable_messages().values("identity__speaker")
    ).order_by("slug")


def corpus_counts() -> dict[str, int]:
    """How many messages, from how many speakers, a run started now would read (one query)."""
    return trainable_messages().aggregate(
        messages=Count("pk"), speakers=Count("identity__speaker", distinct=True)
    )


def chat_format() -> ChatFormat:
    return ChatFormat(speakers={s.slug: s.display_name for s in trainable_speakers()})


def corpus_messages(chunk_size: int = 5000) -> Iterator[CorpusMessage]:
    """Stream the allowed messages in time order, without loading model instances."""
    from trainer.ml.data import CorpusMessage  # torch lives there: keep it out of web processes

    rows = (
        trainable_messages()
        .order_by("conversation_id", "sent_at", "pk")
        .values_list("conversation_id", "identity__speaker__slug", "text", "sent_at")
    )
    for conversation_id, slug, text, sent_at in rows.iterator(chunk_size=chunk_size):
        yield CorpusMessage(
            conversation_id=str(conversation_id), speaker_slug=slug, text=text, sent_at=sent_at
        )
