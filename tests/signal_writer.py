"""Writes real, encrypted Signal Android backup files for the parser's tests and benchmarks.

It builds a SQLite database in one of two layouts, then exports it the way Signal-Android's
``FullBackupExporter`` does: the schema, one ``INSERT INTO t VALUES (?, ...)`` frame per row with
typed parameters (negative integers as uint64 two's complement), each attachment's payload right
after its row, avatar and sticker payloads, the owner's key-values or preferences, an end frame.
Layouts:

* ``"message"``: database version 223 (one ``message`` table, ``attachment``, ``aci``/``e164``),
* ``"sms_mms"``: database version 150 (``sms`` + ``mms``, ``part``, ``uuid``/``phone``,
  ``address``, ``msg_box``, ``thread_recipient_id``).

The encryption is written here independently of ``ingest.parsers.signal_crypto`` so the two check
each other. The salt is fixed and derived keys are cached, so only the first backup written with
a passphrase pays for the 250,000 SHA-512 rounds. Run as a script to write a benchmark file::

    .venv/bin/python -m tests.signal_writer /tmp/big.backup --messages 200000
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import hmac
import random
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ingest.parsers import signal_pb2

DEFAULT_PASSPHRASE = "000001111122222333334444455555"
SALT = bytes(range(0x40, 0x60))  # fixed: see the module docstring
Schema = Literal["message", "sms_mms"]


@dataclass(slots=True)
class FrameInfo:
    number: int  # 1 for the first encrypted frame, as the parser counts
    offset: int  # where its 4-byte length starts
    kind: str  # "statement", "attachment", "avatar", "end", ...
    payload_offset: int | None = None  # where the payload after it starts


@dataclass(slots=True)
class BackupInfo:
    path: Path
    passphrase: str
    version: int
    schema: Schema
    frames: list[FrameInfo] = field(default_factory=list)

    def frame(self, kind: str, nth: int = 0) -> FrameInfo:
        return [f for f in self.frames if f.kind == kind][nth]


@functools.lru_cache(maxsize=8)
def _keys(passphrase: str, salt: bytes) -> tuple[bytes, bytes]:
    secret = passphrase.replace(" ", "").encode()
    digest = hashlib.sha512()
    digest.update(salt)
    key = secret
    for _ in range(250_000):
        digest.update(key)
        digest.update(secret)
        key = digest.digest()
        digest = hashlib.sha512()
    okm = HKDF(hashes.SHA256(), 64, salt=b"\0" * 32, info=b"Backup Export").derive(key[:32])
    return okm[:32], okm[32:]


class _FrameWriter:
    def __init__(
        self,
        out: BinaryIO,
        passphrase: str,
        version: int,
        iv: bytes,
        info: BackupInfo,
        header_version: int | None = None,
    ) -> None:
        header = signal_pb2.BackupFrame()
        header.header.iv = iv
        header.header.salt = SALT
        header_version = version if header_version is None else header_version
        if header_version:  # version 0 files predate the field
            header.header.version = header_version
        data = header.SerializeToString()
        out.write(len(data).to_bytes(4, "big") + data)
        self.out, self.version, self.iv, self.info = out, version, iv, info
        self.position = 4 + len(data)
        self.cipher_key, self.mac_key = _keys(passphrase, SALT)
        self.counter = int.from_bytes(iv[:4], "big")

    def _encryptor(self) -> tuple[bytes, CipherContext]:
        iv = (self.counter & 0xFFFFFFFF).to_bytes(4, "big") + self.iv[4:]
        self.counter += 1
        return iv, Cipher(algorithms.AES(self.cipher_key), modes.CTR(iv)).encryptor()

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.position += len(data)

    def frame(self, frame: signal_pb2.BackupFrame, kind: str) -> None:
        self.info.frames.append(FrameInfo(len(self.info.frames) + 1, self.position, kind))
        plaintext = frame.SerializeToString()
        _, encryptor = self._encryptor()
        mac = hmac.new(self.mac_key, digestmod=hashlib.sha256)
        length = (len(plaintext) + 10).to_bytes(4, "big")
        if self.version >= 1:
            length = encryptor.update(length)
            mac.update(length)
        ciphertext = encryptor.update(plaintext)
        mac.update(ciphertext)
        self._write(length + ciphertext + mac.digest()[:10])

    def payload(self, data: bytes) -> None:
        self.info.frames[-1].payload_offset = self.position
        iv, encryptor = self._encryptor()
        ciphertext = encryptor.update(data)
        mac = hmac.new(self.mac_key, iv + ciphertext, digestmod=hashlib.sha256)
        self._write(ciphertext + mac.digest()[:10])

    def statement(self, sql: str, params: Sequence[object] = ()) -> None:
        frame = signal_pb2.BackupFrame()
        statement = frame.statement
        statement.statement = sql
        for value in params:
            parameter = statement.parameters.add()
            if value is None:
                parameter.nullparameter = True
            elif isinstance(value, bool | int):
                parameter.integerParameter = int(value)  # a Java long (on the wire: uint64 bits)
            elif isinstance(value, float):
                parameter.doubleParameter = value
            elif isinstance(value, bytes):
                parameter.blobParameter = value
            else:
                parameter.stringParamter = str(value)
        self.frame(frame, "statement")


# -- the people, chats and messages a backup holds ----------------------------------------------

GROUP = "hiking"  # the one group chat's key; any other chat key is a contact's 1:1 chat
GROUP_ID = "__signal_group__v2__!" + "ab" * 32
GROUP_TITLE = "Hiking Club"


@dataclass(frozen=True, slots=True)
class Contact:
    key: str
    aci: str | None
    e164: str | None
    given: str | None = None  # profile names
    family: str | None = None
    system_name: str | None = None  # the name in the phone's address book
    username: str | None = None


CONTACTS = (
    Contact("me", "aaaaaaaa-0000-4000-8000-000000000001", "+15550100001", "Sam", "Owner"),
    Contact(
        "alice",
        "aaaaaaaa-0000-4000-8000-000000000002",
        "+15550100002",
        "Alice",
        "Liddell",
        system_name="Alice L. (contacts)",
    ),
    # Upper case, as some versions stored it: the parser must not care.
    Contact("bob", "AAAAAAAA-0000-4000-8000-000000000003", None, "Bob"),
    Contact("carol", None, "+15550100004", username="carol.42"),
    Contact("dave", None, None, "Dave"),  # nothing stable: the parser falls back to the row id
    # Signal's release notes ("Signal" chat), named by the releasechannel.recipient_id key-value.
    Contact("signal", "aaaaaaaa-0000-4000-8000-0000000000ff", None, "Signal"),
)
CONTACTS_BY_KEY = {c.key: c for c in CONTACTS}
SIGNAL = CONTACTS_BY_KEY["signal"]

SECURE_PUSH = 0x800000 | 0x200000
INBOX, SENT = 20, 23
# Row types of the events the parser must skip as "system", by their MessageTypes bits.
SYSTEM_TYPES = {
    "call": 1,  # incoming audio call; 2 when outgoing (set below)
    "group-update": 0x10000 | 0x80000 | SECURE_PUSH,
    "key-change": 0x200 | 0x200000,
    "timer": 0x40000 | SECURE_PUSH,
    "profile-change": 7,
    "payment": 0x300000000 | SECURE_PUSH,
}


@dataclass(frozen=True, slots=True)
class Msg:
    """One row (or, for an edited message, a few rows) of the message table(s)."""

    chat: str  # GROUP or a contact key
    sender: str  # "me" or a contact key
    sent: int  # date_sent, ms since the epoch
    body: str | None = None
    kind: str = "text"  # "text", "story", or a key of SYSTEM_TYPES
    deleted: bool = False
    media: bytes | None = None  # an image/jpeg attachment's bytes
    long_text: str | None = None  # the full text, as a text/x-signal-plain attachment
    quote: tuple[str, int] | None = None  # (author key, sent) of the quoted message
    mentions: tuple[tuple[int, int, str], ...] = ()  # (UTF-16 start, length, contact key)
    edits: tuple[str, ...] = ()  # later revisions' bodies ("message" schema only)
    # parent_story_id: a reply to a story, >0 in the group's story replies, <0 (Signal's
    # ParentStoryId.DirectReply) in the 1:1 chat with its author
    story_parent: int = 0


SCHEMAS: dict[str, list[str]] = {
    "message": [
        "CREATE TABLE recipient (_id INTEGER PRIMARY KEY AUTOINCREMENT, type INTEGER DEFAULT 0, "
        "e164 TEXT UNIQUE DEFAULT NULL, aci TEXT UNIQUE DEFAULT NULL, pni TEXT UNIQUE DEFAULT "
        "NULL, username TEXT UNIQUE DEFAULT NULL, group_id TEXT UNIQUE DEFAULT NULL, "
        "system_joined_name TEXT DEFAULT NULL, profile_given_name TEXT DEFAULT NULL, "
        "profile_family_name TEXT DEFAULT NULL, profile_joined_name TEXT DEFAULT NULL, "
        "nickname_joined_name TEXT DEFAULT NULL, avatar_color TEXT, wallpaper BLOB DEFAULT NULL)",
        "CREATE TABLE thread (_id INTEGER PRIMARY KEY AUTOINCREMENT, date INTEGER DEFAULT 0, "
        "meaningful_messages INTEGER DEFAULT 0, recipient_id INTEGER NOT NULL UNIQUE REFERENCES "
        "recipient (_id) ON DELETE CASCADE, snippet TEXT, archived INTEGER DEFAULT 0)",
        "CREATE TABLE groups (_id INTEGER PRIMARY KEY, group_id TEXT NOT NULL UNIQUE, "
        "recipient_id INTEGER NOT NULL UNIQUE, title TEXT DEFAULT NULL, active INTEGER DEFAULT 1)",
        "CREATE TABLE message (_id INTEGER PRIMARY KEY AUTOINCREMENT, date_sent INTEGER NOT NULL, "
        "date_received INTEGER NOT NULL, date_server INTEGER DEFAULT -1, thread_id INTEGER NOT "
        "NULL, from_recipient_id INTEGER NOT NULL, from_device_id INTEGER, to_recipient_id "
        "INTEGER NOT NULL, type INTEGER NOT NULL, body TEXT, read INTEGER DEFAULT 0, quote_id "
        "INTEGER DEFAULT 0, quote_author INTEGER DEFAULT 0, quote_body TEXT DEFAULT NULL, "
        "remote_deleted INTEGER DEFAULT 0, story_type INTEGER DEFAULT 0, parent_story_id INTEGER "
        "DEFAULT 0, message_ranges BLOB DEFAULT NULL, latest_revision_id INTEGER DEFAULT NULL "
        "REFERENCES message (_id) ON DELETE CASCADE, original_message_id INTEGER DEFAULT NULL "
        "REFERENCES message (_id) ON DELETE CASCADE, revision_number INTEGER DEFAULT 0)",
        "CREATE TABLE attachment (_id INTEGER PRIMARY KEY AUTOINCREMENT, message_id INTEGER, "
        "content_type TEXT, data_size INTEGER, file_name TEXT, quote INTEGER DEFAULT 0, "
        "width INTEGER DEFAULT 0, height INTEGER DEFAULT 0, sticker_pack_id TEXT DEFAULT NULL)",
        "CREATE TABLE mention (_id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id INTEGER, "
        "message_id INTEGER, recipient_id INTEGER, range_start INTEGER, range_length INTEGER)",
        "CREATE TABLE sessions (_id INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, "
        "address TEXT NOT NULL, device INTEGER NOT NULL, record BLOB NOT NULL)",
    ],
    "sms_mms": [
        "CREATE TABLE recipient (_id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT UNIQUE DEFAULT "
        "NULL, username TEXT UNIQUE DEFAULT NULL, phone TEXT UNIQUE DEFAULT NULL, group_id TEXT "
        "UNIQUE DEFAULT NULL, group_type INTEGER DEFAULT 0, system_display_name TEXT DEFAULT "
        "NULL, signal_profile_name TEXT DEFAULT NULL, profile_family_name TEXT DEFAULT NULL, "
        "profile_joined_name TEXT DEFAULT NULL, color TEXT DEFAULT NULL, wallpaper BLOB)",
        "CREATE TABLE thread (_id INTEGER PRIMARY KEY AUTOINCREMENT, date INTEGER DEFAULT 0, "
        "message_count INTEGER DEFAULT 0, thread_recipient_id INTEGER, snippet TEXT, "
        "read INTEGER DEFAULT 1, archived INTEGER DEFAULT 0)",
        "CREATE TABLE groups (_id INTEGER PRIMARY KEY, group_id TEXT, title TEXT, members TEXT, "
        "active INTEGER DEFAULT 1, recipient_id INTEGER)",
        "CREATE TABLE sms (_id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id INTEGER, address "
        "INTEGER, address_device_id INTEGER DEFAULT 1, person INTEGER, date INTEGER, date_sent "
        "INTEGER, date_server INTEGER DEFAULT -1, protocol INTEGER, read INTEGER DEFAULT 0, "
        "status INTEGER DEFAULT -1, type INTEGER, body TEXT, expires_in INTEGER DEFAULT 0, "
        "reactions BLOB DEFAULT NULL, remote_deleted INTEGER DEFAULT 0)",
        "CREATE TABLE mms (_id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id INTEGER, date "
        "INTEGER, date_received INTEGER, date_server INTEGER DEFAULT -1, msg_box INTEGER, read "
        "INTEGER DEFAULT 0, body TEXT, part_count INTEGER, address INTEGER, address_device_id "
        "INTEGER, quote_id INTEGER DEFAULT 0, quote_author TEXT, quote_body TEXT, quote_missing "
        "INTEGER DEFAULT 0, shared_contacts TEXT, remote_deleted INTEGER DEFAULT 0, "
        "ranges BLOB DEFAULT NULL, is_story INTEGER DEFAULT 0, parent_story_id INTEGER DEFAULT 0)",
        "CREATE TABLE part (_id INTEGER PRIMARY KEY, mid INTEGER, seq INTEGER DEFAULT 0, ct TEXT, "
        "pending_push INTEGER, _data TEXT, data_size INTEGER, file_name TEXT, aspect_ratio REAL, "
        "unique_id INTEGER NOT NULL, quote INTEGER DEFAULT 0, sticker_pack_id TEXT DEFAULT NULL)",
        "CREATE TABLE mention (_id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id INTEGER, "
        "message_id INTEGER, recipient_id INTEGER, range_start INTEGER, range_length INTEGER)",
        "CREATE TABLE identities (_id INTEGER PRIMARY KEY AUTOINCREMENT, address INTEGER UNIQUE, "
        "key TEXT, first_use INTEGER DEFAULT 0, timestamp INTEGER DEFAULT 0)",
    ],
}
# Statements real backups carry that the parser must skip: full-text search tables and the
# triggers that feed them (replayed, a trigger on a missing table would fail every insert).
EXTRA_STATEMENTS = {
    "message": [
        "CREATE VIRTUAL TABLE message_fts USING fts5(body, thread_id UNINDEXED, "
        "content=message, content_rowid=_id)",
        "CREATE TABLE message_fts_data(id INTEGER PRIMARY KEY, block BLOB)",
        "CREATE TRIGGER message_ai AFTER INSERT ON message BEGIN INSERT INTO no_such_fts(rowid, "
        "body) VALUES (new._id, new.body); END;",
        "CREATE INDEX message_thread_date_index ON message (thread_id, date_received)",
    ],
    "sms_mms": [
        "CREATE VIRTUAL TABLE sms_fts USING fts5(body, thread_id UNINDEXED, content=sms, "
        "content_rowid=_id)",
        "CREATE TRIGGER sms_ai AFTER INSERT ON sms BEGIN INSERT INTO no_such_fts(rowid, body) "
        "VALUES (new._id, new.body); END;",
        "CREATE INDEX part_mms_id_index ON part (mid)",
    ],
}
LONG_TEXT_PREVIEW = 2000  # Signal keeps this much of a long text in the body column


def build_database(
    schema: Schema, messages: Iterable[Msg], *, first_recipient_id: int = 1
) -> tuple[sqlite3.Connection, dict[int, bytes]]:
    """An in-memory Signal database holding ``messages``; and attachment payloads by row id."""
    db = sqlite3.connect(":memory:")
    for sql in SCHEMAS[schema]:
        db.execute(sql)
    old = schema == "sms_mms"
    rid = {c.key: first_recipient_id + i for i, c in enumerate(CONTACTS)}
    rid[GROUP] = first_recipient_id + len(CONTACTS)
    for c in CONTACTS:
        profile = " ".join(p for p in (c.given, c.family) if p) or None
        names = (c.system_name, c.given, c.family, profile)
        if old:
            db.execute(
                "INSERT INTO recipient (_id, uuid, phone, username, system_display_name, "
                "signal_profile_name, profile_family_name, profile_joined_name, wallpaper) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (rid[c.key], c.aci, c.e164, c.username, *names, b"\x08\x01"),
            )
        else:
            db.execute(
                "INSERT INTO recipient (_id, e164, aci, username, system_joined_name, "
                "profile_given_name, profile_family_name, profile_joined_name, wallpaper) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (rid[c.key], c.e164, c.aci, c.username, *names, b"\x08\x01"),
            )
    group_columns = "group_type" if old else "type"
    db.execute(
        f"INSERT INTO recipient (_id, group_id, {group_columns}) VALUES (?, ?, 3)",
        (rid[GROUP], GROUP_ID),
    )
    db.execute(
        "INSERT INTO groups (_id, group_id, recipient_id, title) VALUES (1, ?, ?, ?)",
        (GROUP_ID, rid[GROUP], GROUP_TITLE),
    )
    payloads: dict[int, bytes] = {}
    threads: dict[str, int] = {}
    for msg in messages:
        if msg.chat not in threads:
            threads[msg.chat] = len(threads) + 1
            db.execute(
                f"INSERT INTO thread (_id, {'thread_recipient_id' if old else 'recipient_id'}) "
                "VALUES (?, ?)",
                (threads[msg.chat], rid[msg.chat]),
            )
        _insert(db, old, msg, threads[msg.chat], rid, payloads)
    return db, payloads


def _insert(
    db: sqlite3.Connection,
    old: bool,
    msg: Msg,
    thread: int,
    rid: dict[str, int],
    payloads: dict[int, bytes],
) -> None:
    outgoing = msg.sender == "me"
    base = SENT if outgoing else INBOX
    if msg.kind in SYSTEM_TYPES:
        bits = SYSTEM_TYPES[msg.kind]
        kind_type = (2 if outgoing else 1) if msg.kind == "call" else bits
        message_type = kind_type if bits < INBOX else base | bits
    else:
        message_type = base | SECURE_PUSH
    body = msg.body
    if msg.long_text is not None:
        body = msg.long_text[:LONG_TEXT_PREVIEW]
    if msg.deleted:
        body = ""
    peer = rid[msg.chat]
    sender = rid[msg.sender]
    received, server = msg.sent + 1500, (-1 if outgoing else msg.sent + 700)
    quote_id, quote_author = (msg.quote[1], rid[msg.quote[0]]) if msg.quote else (0, 0)
    needs_mms = msg.chat == GROUP or msg.media or msg.long_text or msg.quote or msg.mentions
    if old and msg.edits:
        raise ValueError("edits only exist in the 'message' schema")
    if old and not needs_mms and msg.kind != "story" and not msg.story_parent:
        cursor = db.execute(
            "INSERT INTO sms (thread_id, address, date, date_sent, date_server, type, body, "
            "remote_deleted, read) VALUES (?,?,?,?,?,?,?,?,1)",
            (thread, peer if outgoing else sender, received, msg.sent, server, message_type, body,
             int(msg.deleted)),
        )  # fmt: skip
        return
    if old:
        cursor = db.execute(
            "INSERT INTO mms (thread_id, date, date_received, date_server, msg_box, body, "
            "address, quote_id, quote_author, quote_body, remote_deleted, is_story, "
            "parent_story_id, read) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,1)",
            (thread, msg.sent, received, server, message_type, body,
             peer if outgoing else sender, quote_id, str(quote_author) if quote_author else None,
             "quoted" if msg.quote else None, int(msg.deleted), int(msg.kind == "story"),
             msg.story_parent),
        )  # fmt: skip
    else:
        cursor = db.execute(
            "INSERT INTO message (date_sent, date_received, date_server, thread_id, "
            "from_recipient_id, from_device_id, to_recipient_id, type, body, quote_id, "
            "quote_author, quote_body, remote_deleted, story_type, parent_story_id, read) "
            "VALUES (?,?,?,?,?,1,?,?,?,?,?,?,?,?,?,1)",
            (msg.sent, received, server, thread, sender, rid["me"] if not outgoing else peer,
             message_type, body, quote_id, quote_author, "quoted" if msg.quote else None,
             int(msg.deleted), int(msg.kind == "story"), msg.story_parent),
        )  # fmt: skip
    message_id = cursor.lastrowid
    assert message_id is not None
    for start, length, key in msg.mentions:
        db.execute(
            "INSERT INTO mention (thread_id, message_id, recipient_id, range_start, range_length) "
            "VALUES (?,?,?,?,?)",
            (thread, message_id, rid[key], start, length),
        )
    attachments = []
    if msg.media is not None:
        attachments.append(("image/jpeg", msg.media))
    if msg.long_text is not None:
        attachments.append(("text/x-signal-plain", msg.long_text.encode()))
    for content_type, data in attachments:
        if old:
            cursor = db.execute(
                "INSERT INTO part (mid, ct, pending_push, data_size, aspect_ratio, unique_id) "
                "VALUES (?,?,0,?,1.5,?)",
                (message_id, content_type, len(data), 0),
            )
            db.execute("UPDATE part SET unique_id = 1000 + _id WHERE _id = ?", (cursor.lastrowid,))
        else:
            cursor = db.execute(
                "INSERT INTO attachment (message_id, content_type, data_size, width) "
                "VALUES (?,?,?,640)",
                (message_id, content_type, len(data)),
            )
        assert cursor.lastrowid is not None
        payloads[cursor.lastrowid] = data
    revisions = [message_id]
    for number, text in enumerate(msg.edits, start=1):
        cursor = db.execute(
            "INSERT INTO message (date_sent, date_received, date_server, thread_id, "
            "from_recipient_id, from_device_id, to_recipient_id, type, body, read, "
            "original_message_id, revision_number) VALUES (?,?,?,?,?,1,?,?,?,1,?,?)",
            (msg.sent + 60_000 * number, received + 60_000 * number, server, thread, sender,
             rid["me"] if not outgoing else peer, message_type, text, message_id, number),
        )  # fmt: skip
        revisions.append(cursor.lastrowid)
    for older in revisions[:-1]:  # every older revision points at the latest one
        db.execute(
            "UPDATE message SET latest_revision_id = ? WHERE _id = ?", (revisions[-1], older)
        )


WORDS = [
    "trail",
    "summit",
    "coffee",
    "boots",
    "rain",
    "map",
    "lake",
    "tent",
    "sunrise",
    "snacks",
    "water",
    "fog",
    "ridge",
    "bus",
    "ticket",
    "tomorrow",
    "tonight",
    "early",
    "late",
    "maybe",
    "sure",
    "yes",
    "no",
    "lol",
    "great",
    "plan",
    "meet",
    "station",
    "bring",
    "forgot",
    "weather",
    "cold",
    "warm",
    "photo",
    "view",
    "legs",
    "tired",
    "worth",
    "it",
    "again",
    "soon",
    "🏔",
    "☕",
    "👍",
    "🎉",
]


FIXTURE_START = 1_700_000_000_000
# tests/fixtures/signal/tiny.backup holds these (see the README there).
FIXTURE_MESSAGES = (
    Msg("alice", "alice", FIXTURE_START + 60_000, "Are we still on for Saturday? 🏔"),
    Msg("alice", "me", FIXTURE_START + 120_000, "Yes!\nTrailhead at 8."),
    Msg("alice", "alice", FIXTURE_START + 180_000, "Great", quote=("me", FIXTURE_START + 120_000)),
    Msg(
        GROUP,
        "bob",
        FIXTURE_START + 240_000,
        "Who brings coffee, \ufffc?",
        mentions=((19, 1, "me"),),
    ),
    Msg(GROUP, "me", FIXTURE_START + 300_000, "I do ☕", edits=("I do ☕☕",)),
    Msg(GROUP, "bob", FIXTURE_START + 360_000, deleted=True),
    Msg(GROUP, "bob", FIXTURE_START + 420_000, "CgIIAQ==", kind="group-update"),
    Msg(GROUP, "alice", FIXTURE_START + 480_000, media=b"\xff\xd8\xff\xe0 not really a jpeg"),
    Msg(GROUP, "me", FIXTURE_START + 540_000, long_text="A long story. " * 200),
)


def generate_messages(n: int, *, seed: int = 0, schema: Schema = "message") -> Iterable[Msg]:
    """``n`` messages in three chats with a realistic mix of everything the parser handles."""
    rng = random.Random(seed)
    chats = {"alice": ("me", "alice"), "bob": ("me", "bob"), GROUP: ("me", "alice", "bob", "carol")}
    recent: dict[str, list[tuple[str, int]]] = {chat: [] for chat in chats}
    for i in range(n):
        chat = rng.choice(list(chats))
        sender = rng.choice(chats[chat])
        sent = 1_600_000_000_000 + i * 1_000 + rng.randrange(500)
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14)))
        roll = rng.random()
        fields: dict = {"body": text}
        if roll < 0.04:
            kinds = ["call", "key-change", "timer"] + (["group-update"] if chat == GROUP else [])
            fields = {"kind": rng.choice(kinds), "body": None}
        elif roll < 0.06:
            fields = {"deleted": True}
        elif roll < 0.09:
            fields = {"media": rng.randbytes(rng.randint(256, 2048)), "body": None}
        elif roll < 0.10:
            fields["media"] = rng.randbytes(rng.randint(256, 2048))
        elif roll < 0.11:
            fields = {"long_text": (text + " ") * rng.randint(200, 300)}
        elif roll < 0.15 and recent[chat]:
            fields["quote"] = rng.choice(recent[chat])
        elif roll < 0.18 and chat == GROUP:
            other = rng.choice([k for k in chats[GROUP] if k != sender])
            fields["body"] = "\ufffc " + text
            fields["mentions"] = ((0, 1, other),)
        elif roll < 0.19 and schema == "message":
            fields["edits"] = (text + " (edited)",)
        msg = Msg(chat, sender, sent, **fields)
        if msg.kind == "text" and not msg.deleted:
            recent[chat] = [*recent[chat][-9:], (sender, sent)]
        yield msg


def write_backup(
    path: str | Path,
    *,
    passphrase: str = DEFAULT_PASSPHRASE,
    version: int = 1,
    schema: Schema = "message",
    messages: Iterable[Msg] | None = None,
    n_messages: int | None = None,
    seed: int = 0,
    first_recipient_id: int = 1,
    owner_hint: bool = True,
    iv: bytes | None = None,
) -> BackupInfo:
    """Write a backup holding ``messages`` (or ``n_messages`` generated from ``seed``).

    ``first_recipient_id`` shifts the recipient row ids (a later backup of the same phone can
    number them differently); ``owner_hint=False`` leaves out the key-values/preferences that
    name the phone's owner. ``iv`` defaults to 16 bytes drawn from ``seed``.
    """
    if messages is None:
        messages = generate_messages(n_messages or 0, seed=seed, schema=schema)
    path = Path(path)
    info = BackupInfo(path, passphrase, version, schema)
    db, payloads = build_database(schema, messages, first_recipient_id=first_recipient_id)
    iv = iv or random.Random(seed).randbytes(16)
    with open(path, "wb") as out:
        writer = _FrameWriter(out, passphrase, version, iv, info)
        version_frame = signal_pb2.BackupFrame()
        version_frame.version.version = 223 if schema == "message" else 150
        writer.frame(version_frame, "version")
        _export(db, writer, schema, payloads)
        _write_key_values(writer, schema, owner_hint, first_recipient_id)
        _write_avatar_and_sticker(writer, first_recipient_id)
        end = signal_pb2.BackupFrame()
        end.end = True
        writer.frame(end, "end")
    db.close()
    return info


def write_frames(
    path: str | Path,
    frames: Iterable[signal_pb2.BackupFrame],
    *,
    passphrase: str = DEFAULT_PASSPHRASE,
    version: int = 1,
    header_version: int | None = None,
) -> BackupInfo:
    """A backup of exactly ``frames`` (then an end frame), for odd cases; ``header_version``
    overrides the version written in the header (the framing still follows ``version``)."""
    path = Path(path)
    info = BackupInfo(path, passphrase, version, "message")
    with open(path, "wb") as out:
        writer = _FrameWriter(out, passphrase, version, bytes(16), info, header_version)
        for frame in frames:
            writer.frame(frame, "frame")
        end = signal_pb2.BackupFrame()
        end.end = True
        writer.frame(end, "end")
    return info


def _export(
    db: sqlite3.Connection, writer: _FrameWriter, schema: Schema, payloads: dict[int, bytes]
) -> None:
    tables = [
        (name, sql)
        for name, sql in db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY rowid"
        )
    ]
    for _, sql in tables:  # "CREATE TABLE sqlite_sequence(name,seq)" among them, as in Signal's
        writer.statement(sql)
    # Virtual tables, their triggers and indexes come before the data in real backups too.
    for sql in EXTRA_STATEMENTS[schema]:
        writer.statement(sql)
    attachment_table = "attachment" if schema == "message" else "part"
    for name, _ in tables:
        if name.startswith("sqlite_"):
            continue
        cursor = db.execute(f"SELECT * FROM {name} ORDER BY _id")  # noqa: S608
        template = f"INSERT INTO {name} VALUES ({','.join('?' * len(cursor.description))})"
        for row in cursor:
            writer.statement(template, row)
            if name == attachment_table and row[0] in payloads:
                frame = signal_pb2.BackupFrame()
                frame.attachment.rowId = row[0]
                frame.attachment.attachmentId = 1000 + row[0] if schema == "sms_mms" else 0
                frame.attachment.length = len(payloads[row[0]])
                writer.frame(frame, "attachment")
                writer.payload(payloads[row[0]])


def _write_key_values(
    writer: _FrameWriter, schema: Schema, owner_hint: bool, first_recipient_id: int
) -> None:
    release_channel = signal_pb2.BackupFrame()
    release_channel.keyValue.key = "releasechannel.recipient_id"
    release_channel.keyValue.stringValue = str(first_recipient_id + CONTACTS.index(SIGNAL))
    writer.frame(release_channel, "keyValue")
    me = CONTACTS_BY_KEY["me"]
    if not owner_hint:
        return
    if schema == "message":
        for key, value in (("account.aci", me.aci), ("account.e164", me.e164)):
            frame = signal_pb2.BackupFrame()
            frame.keyValue.key = key
            frame.keyValue.stringValue = value
            writer.frame(frame, "keyValue")
    else:
        for key, value in (("pref_local_uuid", me.aci), ("pref_local_number", me.e164)):
            frame = signal_pb2.BackupFrame()
            frame.preference.file = "SecureSMS-Preferences"
            frame.preference.key = key
            frame.preference.value = value
            writer.frame(frame, "preference")


def _write_avatar_and_sticker(writer: _FrameWriter, first_recipient_id: int) -> None:
    avatar = signal_pb2.BackupFrame()
    avatar.avatar.recipientId = str(first_recipient_id + 1)
    avatar.avatar.length = 300
    writer.frame(avatar, "avatar")
    writer.payload(bytes(range(100)) * 3)
    sticker = signal_pb2.BackupFrame()
    sticker.sticker.rowId = 1
    sticker.sticker.length = 0  # an empty payload still has its IV counter and MAC
    writer.frame(sticker, "sticker")
    writer.payload(b"")


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--version", type=int, default=1, choices=(0, 1))
    parser.add_argument("--schema", default="message", choices=("message", "sms_mms"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixture", action="store_true", help="write FIXTURE_MESSAGES")
    args = parser.parse_args(list(argv) if argv is not None else None)
    info = write_backup(
        args.path,
        version=args.version,
        schema=args.schema,
        messages=FIXTURE_MESSAGES if args.fixture else None,
        n_messages=args.messages,
        seed=args.seed,
    )
    print(f"wrote {info.path} ({len(info.frames)} frames), passphrase {DEFAULT_PASSPHRASE}")


if __name__ == "__main__":
    main()
