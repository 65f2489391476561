"""What a stranger self-hosting joe with docker-compose meets: a wrong .env, the web container's
log, stopping and upgrading, the image's system packages. The containers' commands are run or
read as the image runs them, outside Docker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def production_env(tmp_path: Path, **changes: str | None) -> dict[str, str]:
    """As compose gives it (DEBUG=0, a key, the data volume), on SQLite and the embedded broker;
    a change of None leaves that variable out."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE", "REDIS_URL", "SECRET_KEY"}
    }
    env.update(
        DEBUG="0",
        SECRET_KEY="x" * 20 + "production-secret-from-the-environment-0123456789",
        ALLOWED_HOSTS="joe.example.org",
        JOE_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'joe.sqlite3'}",
        HOME=str(tmp_path),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# --- a wrong .env: one sentence, not a traceback --------------------------------------------------


def test_a_missing_secret_key_is_one_sentence_not_a_traceback(tmp_path):
    """Left out of .env, SECRET_KEY made `docker compose logs web` forty lines of Django's
    settings machinery, restarting, with the reason on the last line."""
    env = production_env(tmp_path, SECRET_KEY=None)

    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--check"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip

    assert result.returncode == 78  # EX_CONFIG
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("joe: SECRET_KEY must be set")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_setting_that_is_not_a_number_names_its_variable(tmp_path):
    """int('five') said only "invalid literal for int() with base 10", in a traceback."""
    env = production_env(tmp_path, JOE_LOGIN_FAILURES="five")

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode == 78
    assert result.stderr.strip() == "joe: JOE_LOGIN_FAILURES must be a whole number, not 'five'."


@pytest.mark.parametrize("container", ["web", "worker"])
def test_a_container_with_a_missing_secret_key_says_so_and_stops(tmp_path, container):
    """The worker took the error for a database not ready yet and waited for it forever, saying
    every 5 s that it was waiting for web's migrations."""
    env = production_env(tmp_path, SECRET_KEY=None)

    result = subprocess.run(
        [str(ROOT / "docker" / container), "-Q", "default", "-n", "default@selfhost"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 78, result.stderr
    assert "joe: SECRET_KEY must be set" in result.stderr
    assert "waiting for the database" not in result.stderr
    assert "Traceback" not in result.stderr
