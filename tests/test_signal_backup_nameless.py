"""Signal contacts with no name at all (no nickname, contact or profile name, no username):
each keeps a label of its own, from what the backup knows of them, the same on every import.

No Django: ``pytest -p no:django tests/test_signal_backup_nameless.py`` runs it.
"""

from __future__ import annotations

from pathlib import Path

from ingest.parsers.signal_backup import parse
from tests.builders.checks import check_contract, identities, messages
from tests.signal_writer import DEFAULT_PASSPHRASE, write_frames
from tests.test_signal_backup import statement_frame

T = 1_700_000_000_000
INBOX = 20 | 0x800000 | 0x200000
OWNER_ACI = "aaaaaaaa-0000-4000-8000-000000000001"
# (row id, ACI, phone number) of people who never set a profile name and are not in the
# owner's contacts: two with an ACI only (Signal's phone-number privacy), one with nothing.
NAMELESS = [
    (2, "0c9e2d4f-5b7a-4e61-9f0d-3b2a1c4d7e8a", None),
    (3, "7f1e0a3b-2c4d-4e5f-8a9b-0c1d2e3f4a5b", None),
    (4, None, None),
]


def nameless_backup(path: Path, *, first_row: int = 2) -> Path:
    """A v223-like backup: one group chat in which the three nameless people write, the row ids
    starting at ``first_row`` (another backup of the phone may number them differently)."""
    shift = first_row - 2
    frames: list = [
        "CREATE TABLE recipient (_id INTEGER PRIMARY KEY, aci TEXT, e164 TEXT, group_id TEXT, "
        "system_joined_name TEXT, profile_given_name TEXT, profile_family_name TEXT, "
        "profile_joined_name TEXT, nickname_joined_name TEXT, username TEXT)",
        "CREATE TABLE groups (_id INTEGER PRIMARY KEY, group_id TEXT, recipient_id INTEGER, "
        "title TEXT)",
        "CREATE TABLE thread (_id INTEGER PRIMARY KEY, recipient_id INTEGER)",
        "CREATE TABLE message (_id INTEGER PRIMARY KEY, date_sent INTEGER, date_received "
        "INTEGER, thread_id INTEGER, from_recipient_id INTEGER, to_recipient_id INTEGER, "
        "type INTEGER, body TEXT)",
        ("INSERT INTO recipient (_id, aci, profile_given_name) VALUES (?, ?, ?)",
         [1, OWNER_ACI, "Sam"]),
        ("INSERT INTO recipient (_id, group_id) VALUES (?, ?)", [10 + shift, "__group__x"]),
        ("INSERT INTO groups VALUES (?, ?, ?, ?)", [1, "__group__x", 10 + shift, "Book club"]),
        ("INSERT INTO thread VALUES (?, ?)", [1, 10 + shift]),
    ]  # fmt: skip
    for n, (row, aci, _) in enumerate(NAMELESS):
        rid = row + shift
        if aci:
            frames.append(("INSERT INTO recipient (_id, aci) VALUES (?, ?)", [rid, aci]))
        else:
            frames.append(("INSERT INTO recipient (_id) VALUES (?)", [rid]))
        frames.append(
            (
                "INSERT INTO message VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [n + 1, T + n, T + n + 9, 1, rid, 1, INBOX, f"hello from {row}"],
            )
        )
    write_frames(path, [statement_frame(f) for f in frames])
    return path


def names(path: Path) -> dict[str, str]:
    records = check_contract(parse(path, passphrase=DEFAULT_PASSPHRASE))
    assert len(messages(records)) == 3
    return {i.external_id: i.display_name for i in identities(records)}


def test_nameless_contacts_are_told_apart(tmp_path):
    found = names(nameless_backup(tmp_path / "a.backup"))

    assert found == {
        "aci:0c9e2d4f-5b7a-4e61-9f0d-3b2a1c4d7e8a": "Unknown (…7e8a)",
        "aci:7f1e0a3b-2c4d-4e5f-8a9b-0c1d2e3f4a5b": "Unknown (…4a5b)",
        "recipient:4": "Unknown (#4)",
    }
    assert len(set(found.values())) == 3


def test_their_labels_are_the_same_in_a_later_backup_of_the_phone(tmp_path):
    """Labels come from the ids the people are stored under: a later backup that numbers its
    rows differently gives the people with an ACI the same identity and the same label."""
    first = names(nameless_backup(tmp_path / "a.backup"))
    later = names(nameless_backup(tmp_path / "b.backup", first_row=5))

    def by_aci(found: dict[str, str]) -> dict[str, str]:
        return {key: name for key, name in found.items() if key.startswith("aci:")}

    assert by_aci(later) == by_aci(first) and len(by_aci(first)) == 2
    assert later["recipient:7"] == "Unknown (#7)"
