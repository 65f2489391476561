"""The Signal replay in a child process: same records as in-process, and clean failures.

Big backups replay in a child process fed through a pipe (``ingest.parsers.signal_replay``);
these tests force it on small ones. No Django needed: ``pytest -p no:django`` works.
"""

from __future__ import annotations

import contextlib
import io
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ingest.parsers import signal_backup, signal_pb2, signal_replay
from ingest.parsers.records import ExportError
from ingest.parsers.signal_replay import LongTextRows, Replayer, serve
from ingest.parsers.signal_schema import READ_COLUMNS
from tests.builders.checks import check_contract, messages
from tests.signal_writer import DEFAULT_PASSPHRASE, Msg, generate_messages, write_backup
from tests.test_signal_backup import CURATED, EDITED, T, corrupted, flip

LONG = "A long one. " * 400
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def children(monkeypatch):
    """Every backup replays in a child; the list collects the ChildReplay objects made."""
    made: list[signal_replay.ChildReplay] = []

    class Recorded(signal_replay.ChildReplay):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(signal_backup, "CHILD_REPLAY_MIN_BYTES", 0)
    monkeypatch.setattr(signal_backup, "_cpus", lambda: 2)  # even where only one is there
    monkeypatch.setattr(signal_backup, "ChildReplay", Recorded)
    return made


def parse_all(path, **kwargs):
    return check_contract(signal_backup.parse(path, passphrase=DEFAULT_PASSPHRASE, **kwargs))


@pytest.mark.parametrize("schema", ["message", "sms_mms"])
def test_a_child_replay_reads_what_an_in_process_one_does(tmp_path, children, monkeypatch, schema):
    msgs = CURATED + ([EDITED] if schema == "message" else [])
    msgs += [Msg("alice", "alice", T + 30_000, long_text=LONG)]
    msgs += list(generate_messages(500, seed=11, schema=schema))
    info = write_backup(tmp_path / "b.backup", schema=schema, messages=msgs)
    in_child = parse_all(info.path)
    assert len(children) == 1 and children[0]._process.returncode == 0
    assert LONG in [m.text for m in messages(in_child)]
    assert len(messages(in_child)) > 400

    monkeypatch.setattr(signal_backup, "CHILD_REPLAY_MIN_BYTES", 1 << 62)
    assert parse_all(info.path) == in_child
    assert len(children) == 1  # the second parse ran in this process


def test_the_child_never_sees_the_passphrase(tmp_path, children, monkeypatch):
    seen = []
    popen = subprocess.Popen

    def spy(command, **kwargs):
        seen.append((command, kwargs.get("env", {})))
        return popen(command, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    parse_all(write_backup(tmp_path / "b.backup", messages=CURATED).path)
    (command, env), = seen  # fmt: skip
    assert DEFAULT_PASSPHRASE not in " ".join(command)
    assert DEFAULT_PASSPHRASE not in " ".join(f"{k}={v}" for k, v in env.items())


def test_a_bad_mac_stops_the_child_and_removes_its_database(tmp_path, children, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    info = write_backup(tmp_path / "b.backup", messages=list(generate_messages(300, seed=1)))
    frame = info.frames[len(info.frames) // 2]
    flip(info.path, frame.offset + 6)
    with pytest.raises(ExportError) as caught:
        parse_all(info.path)
    assert str(caught.value) == corrupted(frame.number)
    assert children[0]._process.returncode is not None  # killed and reaped, not left running
    assert not list(scratch.iterdir())


def test_a_cancelled_import_stops_the_child(tmp_path, children, monkeypatch):
    class Cancelled(Exception):
        pass

    def progress(_update):
        raise Cancelled

    monkeypatch.setattr(signal_backup, "PROGRESS_INTERVAL", 0)
    info = write_backup(tmp_path / "b.backup", messages=list(generate_messages(300, seed=1)))
    with pytest.raises(Cancelled):
        parse_all(info.path, progress=progress)
    assert children[0]._process.returncode is not None


def test_a_child_that_dies_fails_the_parse_with_a_reason(tmp_path, children, monkeypatch, caplog):
    def progress(_update):
        children[0]._process.kill()

    monkeypatch.setattr(signal_backup, "PROGRESS_INTERVAL", 0)
    info = write_backup(tmp_path / "b.backup", messages=list(generate_messages(300, seed=1)))
    with pytest.raises(RuntimeError, match="the Signal replay process stopped"):
        parse_all(info.path, progress=progress)
    assert "the replay process failed" in caplog.text


def test_no_child_process_falls_back_to_replaying_here(tmp_path, children, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise OSError("no processes left")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    records = parse_all(write_backup(tmp_path / "b.backup", messages=CURATED).path)
    assert children == [] and len(messages(records)) == 9


def test_the_child_commits_only_at_the_end_marker(tmp_path):
    """A parent that goes away mid-stream leaves a child that exits 1 and answers nothing."""
    statement = signal_pb2.BackupFrame()
    statement.statement.statement = "CREATE TABLE thread (_id INTEGER PRIMARY KEY, snippet TEXT)"
    raw = statement.SerializeToString()
    stream = b"S" + len(raw).to_bytes(4, "big") + raw

    def child(path, data):
        command = [sys.executable, "-m", "ingest.parsers.signal_replay", str(path)]
        return subprocess.run(command, input=data, capture_output=True, cwd=ROOT, check=False)

    cut = child(tmp_path / "cut.sqlite", stream)
    assert (cut.returncode, cut.stdout) == (1, b"")
    whole = child(tmp_path / "whole.sqlite", stream + b"E\0\0\0\0")
    assert (whole.returncode, whole.stdout) == (0, b"0")
    with contextlib.closing(sqlite3.connect(tmp_path / "whole.sqlite")) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"thread", "joe_long_text"} <= tables
    assert serve(tmp_path / "direct.sqlite", io.BytesIO(stream), io.BytesIO()) == 1


# -- narrowing keeps what the full replay would keep --------------------------------------


def replay_both(statements: list[tuple[str, list]]) -> tuple[sqlite3.Connection, ...]:
    """Run the statements through a narrowing and a full Replayer; both databases back."""
    databases = []
    for narrow in (True, False):
        db = sqlite3.connect(":memory:")
        replayer = Replayer(db, narrow=narrow)
        for sql, values in statements:
            statement = signal_pb2.SqlStatement(statement=sql)
            for value in values:
                if value is None:
                    statement.parameters.add(nullparameter=True)
                elif isinstance(value, int):
                    statement.parameters.add(integerParameter=value)
                else:
                    statement.parameters.add(stringParamter=value)
            replayer.execute(statement)
        databases.append((db, replayer.failures))
    return tuple(databases)


THREAD = "CREATE TABLE thread (_id INTEGER PRIMARY KEY, recipient_id INTEGER, snippet TEXT)"


def read_columns(db: sqlite3.Connection, table: str) -> list[tuple]:
    have = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    columns = ", ".join(c for c in have if c in READ_COLUMNS[table])
    return db.execute(f"SELECT {columns} FROM {table} ORDER BY {columns}").fetchall()  # noqa: S608


@pytest.mark.parametrize(
    ("table", "statements", "rows", "narrowed"),
    [
        pytest.param(  # table_info hands the default back without its parentheses
            "thread",
            [
                (
                    "CREATE TABLE thread (_id INTEGER PRIMARY KEY, recipient_id INTEGER "
                    "DEFAULT (abs(-5)), snippet TEXT)",
                    [],
                ),
                ("INSERT INTO thread (_id, snippet) VALUES (?, ?)", [1, "hi"]),
            ],
            [(1, 5)],
            True,
            id="expression-default",
        ),
        pytest.param(
            "mention",
            [
                (
                    "CREATE TABLE mention (message_id INTEGER, range_start INTEGER, range_length "
                    "INTEGER, recipient_id INTEGER, junk TEXT, PRIMARY KEY (message_id, "
                    "range_start))",
                    [],
                ),
                ("INSERT OR REPLACE INTO mention VALUES (?,?,?,?,?)", [7, 0, 1, 3, "a"]),
                ("INSERT OR REPLACE INTO mention VALUES (?,?,?,?,?)", [7, 0, 1, 4, "b"]),
            ],
            [(7, 0, 1, 4)],
            True,
            id="composite-key-replace",
        ),
        pytest.param(
            "thread",
            [
                (
                    "CREATE TABLE thread (_id INTEGER PRIMARY KEY, recipient_id INTEGER, "
                    "snippet TEXT UNIQUE)",
                    [],
                ),
                ("INSERT OR IGNORE INTO thread VALUES (?, ?, ?)", [1, 10, "same"]),
                ("INSERT OR IGNORE INTO thread VALUES (?, ?, ?)", [2, 20, "same"]),
            ],
            [(1, 10)],
            False,
            id="unique-on-a-column-left-out",
        ),
        pytest.param(
            "sms",
            [
                (
                    "CREATE TABLE sms (_id INTEGER PRIMARY KEY, body TEXT NOT NULL, junk TEXT)",
                    [],
                ),
                ("INSERT INTO sms VALUES (?, ?, ?)", [1, None, "x"]),
                ("INSERT INTO sms VALUES (?, ?, ?)", [2, "kept", "y"]),
            ],
            [(2, "kept")],
            True,
            id="not-null",
        ),
        pytest.param(
            "thread",
            [
                ("INSERT INTO thread VALUES (?, ?, ?)", [1, 10, "before the table"]),
                (THREAD, []),
                ("INSERT INTO thread VALUES (?, ?, ?)", [2, 20, "after"]),
            ],
            [(2, 20)],
            True,
            id="insert-before-create",
        ),
        pytest.param(
            "thread",
            [
                (THREAD.replace("TABLE", "TABLE IF NOT EXISTS"), []),
                (THREAD.replace("TABLE", "TABLE IF NOT EXISTS"), []),
                ("INSERT INTO thread VALUES (?, ?, ?)", [1, 10, "x"]),
            ],
            [(1, 10)],
            True,
            id="created-twice",
        ),
        pytest.param(
            "groups",
            [
                (
                    "CREATE TABLE groups (group_id TEXT PRIMARY KEY, title TEXT, junk TEXT) "
                    "WITHOUT ROWID",
                    [],
                ),
                ("INSERT OR REPLACE INTO groups VALUES (?, ?, ?)", ["g", "Old", "x"]),
                ("INSERT OR REPLACE INTO groups VALUES (?, ?, ?)", ["g", "New", "y"]),
            ],
            [("g", "New")],
            False,
            id="without-rowid",
        ),
    ],
)
def test_narrowing_keeps_what_the_full_replay_keeps(table, statements, rows, narrowed):
    (narrow, narrow_failures), (full, full_failures) = replay_both(statements)
    assert read_columns(narrow, table) == read_columns(full, table) == rows
    assert narrow_failures == full_failures
    columns = {row[1] for row in narrow.execute(f"PRAGMA table_info({table})")}
    assert (columns <= READ_COLUMNS[table]) is narrowed


def test_long_text_rows_wait_for_their_table():
    rows = LongTextRows()
    insert = "INSERT INTO part VALUES (?, ?, ?)"

    def note(sql, values):
        statement = signal_pb2.SqlStatement(statement=sql)
        for value in values:
            if isinstance(value, int):
                statement.parameters.add(integerParameter=value)
            else:
                statement.parameters.add(stringParamter=value)
        rows.note(statement, sql)

    note(insert, [1, 10, "text/x-signal-plain"])  # no table yet: nothing known about it
    note("CREATE TABLE part (_id INTEGER PRIMARY KEY, mid INTEGER, ct TEXT)", [])
    note(insert, [2, 20, "text/x-signal-plain"])
    note(insert, [3, 30, "image/jpeg"])
    assert (rows.message_of(1), rows.message_of(2), rows.message_of(3)) == (None, 20, None)
    assert rows.message_of(2) is None  # a payload follows its row once
