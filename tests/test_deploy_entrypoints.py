"""The containers' commands (docker/web, docker/worker), run as the image runs them: production
settings, a database nobody has migrated yet, the process they leave behind and how it stops."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def production_env(tmp_path: Path, **changes: str | None) -> dict[str, str]:
    """As compose gives it (DEBUG=0, a key, the data volume), on a fresh SQLite database and the
    embedded broker, with this virtualenv's python, gunicorn and celery first on the PATH; a
    change of None leaves that variable out."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE", "REDIS_URL", "JOE_BIND"}
    }
    env.update(
        DEBUG="0",
        SECRET_KEY="x" * 20 + "production-secret-from-the-environment-0123456789",
        ALLOWED_HOSTS="joe.example.org",
        JOE_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'joe.sqlite3'}",
        LOG_LEVEL="INFO",
        HOME=str(tmp_path),  # gunicorn's control socket: not the one in this user's home
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # A session of its own: whatever the command leaves running can be killed afterwards.
    with log.open("wb") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_everything(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def wait_for(condition, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds} s; its output:\n{log.read_text()}")
        time.sleep(0.3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_web_migrates_then_serves_and_stops_when_docker_asks(tmp_path):
    """docker stop sends SIGTERM to the command it started: gunicorn must be that process. Under
    `sh -c "migrate && gunicorn"` the shell got it, and gunicorn went on serving."""
    port = free_port()
    env = {**production_env(tmp_path), "JOE_BIND": f"127.0.0.1:{port}"}
    log = tmp_path / "web.log"
    web = start([str(ROOT / "docker" / "web")], env, log)
    try:
        wait_for(lambda: answers(port), 90, "the site did not answer /healthz", log)
        assert "gunicorn" in command_line(web.pid)
        check = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--check"], cwd=ROOT, env=env
        )
        assert check.returncode == 0, "the web command left migrations unapplied"

        web.send_signal(signal.SIGTERM)

        web.wait(timeout=30)
        wait_for(lambda: not answers(port), 10, "gunicorn still answered after SIGTERM", log)
    finally:
        stop_everything(web)


def test_worker_waits_for_the_migrations_then_works_and_logs_at_log_level(tmp_path):
    env = production_env(tmp_path)
    log = tmp_path / "worker.log"
    worker = start(
        [str(ROOT / "docker" / "worker"), "-Q", "default", "-c", "1", "-n", "default@deploytest"],
        env,
        log,
    )
    try:
        wait_for(lambda: b"waiting for the database" in log.read_bytes(), 60, "no word", log)
        assert "celery" not in command_line(worker.pid)  # still the script, waiting

        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip

        # "ready." is an INFO record: celery alone would log warnings only.
        wait_for(lambda: b"default@deploytest ready." in log.read_bytes(), 90, "no ready", log)
        assert "celery" in command_line(worker.pid)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    finally:
        stop_everything(worker)
