"""Contract checks every parser's tests run on what it yields (see ingest/parsers/records.py)."""

from __future__ import annotations

import datetime as dt
import zipfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from ingest.parsers.records import (
    ConversationRecord,
    IdentityRecord,
    MessageRecord,
    Record,
    SkippedRecord,
)

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"


def check_contract(records: Iterable[Record]) -> list[Record]:
    """Identities and conversations come before messages that use them; ids are unique; sent_at
    is aware UTC. Returns the records as a list."""
    out = list(records)
    identities: set[str] = set()
    conversations: set[str] = set()
    message_ids: set[str] = set()
    for record in out:
        if isinstance(record, IdentityRecord):
            assert record.external_id not in identities, f"identity {record.external_id} twice"
            identities.add(record.external_id)
        elif isinstance(record, ConversationRecord):
            assert record.external_id not in conversations, record
            conversations.add(record.external_id)
        elif isinstance(record, MessageRecord):
            assert record.identity_id in identities, f"identity not yielded before {record}"
            assert record.conversation_id in conversations, f"conversation not before {record}"
            assert record.external_id not in message_ids, f"duplicate message id {record}"
            message_ids.add(record.external_id)
            assert record.sent_at.utcoffset() == dt.timedelta(0), record
            assert record.sent_at.tzinfo is dt.UTC or record.sent_at.tzinfo == dt.UTC, record
            assert record.text.strip(), record
        else:
            assert isinstance(record, SkippedRecord), record
    return out


def messages(records: Iterable[Record]) -> list[MessageRecord]:
    return [r for r in records if isinstance(r, MessageRecord)]


def identities(records: Iterable[Record]) -> list[IdentityRecord]:
    return [r for r in records if isinstance(r, IdentityRecord)]


def conversations(records: Iterable[Record]) -> list[ConversationRecord]:
    return [r for r in records if isinstance(r, ConversationRecord)]


def skipped(records: Iterable[Record]) -> Counter[str]:
    return Counter(r.reason for r in records if isinstance(r, SkippedRecord))


def zip_with(path: Path, members: dict[str, bytes | str]) -> Path:
    """A zip holding exactly ``members`` (raw names, so unsafe ones too)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path
