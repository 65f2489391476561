"""The Signal replay in a child process: same records as in-process, and clean failures.

Big backups replay in a child process fed through a pipe (``ingest.parsers.signal_replay``);
these tests force it on small ones. No Django needed: ``pytest -p no:django`` works.
"""

from __future__ import annotations

import io
import sqlite3
import subprocess
import tempfile

import pytest

from ingest.parsers import signal_backup, signal_pb2, signal_replay
from ingest.parsers.records import ExportError
from ingest.parsers.signal_replay import serve
from tests.builders.checks import check_contract, messages
from tests.signal_writer import DEFAULT_PASSPHRASE, Msg, generate_messages, write_backup
from tests.test_signal_backup import CURATED, EDITED, T, corrupted, flip

LONG = "A long one. " * 400


@pytest.fixture
def children(monkeypatch):
    """Every backup replays in a child; the list collects the ChildReplay objects made."""
    made: list[signal_replay.ChildReplay] = []

    class Recorded(signal_replay.ChildReplay):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(signal_backup, "CHILD_REPLAY_MIN_BYTES", 0)
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
    out = io.BytesIO()
    assert serve(tmp_path / "cut.sqlite", io.BytesIO(stream), out) == 1
    assert out.getvalue() == b""
    assert serve(tmp_path / "whole.sqlite", io.BytesIO(stream + b"E\0\0\0\0"), out) == 0
    assert out.getvalue() == b"0"
    tables = sqlite3.connect(tmp_path / "whole.sqlite").execute("SELECT name FROM sqlite_master")
    assert {"thread", "joe_long_text"} <= {row[0] for row in tables}
