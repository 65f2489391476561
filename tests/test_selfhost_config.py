"""What a stranger self-hosting joe with docker-compose meets: a wrong .env, the web container's
log, stopping and upgrading, the image's system packages. The containers' commands are run or
read as the image runs them, outside Docker."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from gunicorn.config import Config

from joe_site.access_log import AccessLog
from tests.test_deploy_entrypoints import production_env

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def web_gunicorn_config() -> Config:
    """gunicorn's settings as docker/web's command line gives them."""
    script = (ROOT / "docker" / "web").read_text().replace("\\\n", " ")
    line = next(line for line in script.splitlines() if line.startswith("exec gunicorn "))
    args = shlex.split(line)[2:]
    config = Config()
    for name, value in vars(config.parser().parse_args(args)).items():
        if value is not None and name in config.settings:
            config.set(name, value)
    return config


def seconds(duration: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(s|m)", duration).groups()
    return int(number) * (60 if unit == "m" else 1)


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


# --- the web container's log ----------------------------------------------------------------------


def log_request(access_log: AccessLog, path: str, **environ: str) -> None:
    environ = {
        "REQUEST_METHOD": "GET", "RAW_URI": path, "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "172.18.0.1", **environ,
    }  # fmt: skip
    headers = [
        (key[5:].replace("_", "-"), value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    response = SimpleNamespace(status="200 OK", headers=[], sent=30)
    access_log.access(response, SimpleNamespace(headers=headers), environ, timedelta(0))


def test_the_web_container_logs_each_request_with_the_client_the_proxy_names(tmp_path):
    """gunicorn wrote no access log in the container: `docker compose logs web` showed no
    request at all. Now each one, as the proxy saw its client, without a reset link's token and
    without the health check docker makes every 30 s."""
    config = web_gunicorn_config()
    assert config.accesslog == "-"  # stdout: docker's log
    assert config.logger_class is AccessLog
    config.set("accesslog", str(tmp_path / "access.log"))
    access_log = AccessLog(config)

    log_request(access_log, "/healthz", REMOTE_ADDR="127.0.0.1")  # docker's health check
    log_request(
        access_log,
        "/accounts/reset/Mg/cz8k2b-0123456789abcdef/",
        HTTP_X_FORWARDED_FOR="203.0.113.9",
        HTTP_USER_AGENT="Firefox",
    )
    log_request(access_log, "/healthz", HTTP_X_FORWARDED_FOR="203.0.113.7")  # a visitor's

    lines = (tmp_path / "access.log").read_text().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("203.0.113.9 ")
    assert '"GET /accounts/reset/Mg/(token)/ HTTP/1.1" 200' in lines[0]
    assert "0123456789abcdef" not in lines[0] and '"Firefox"' in lines[0]
    assert lines[1].startswith("203.0.113.7 ") and "/healthz" in lines[1]


# --- stopping and upgrading -----------------------------------------------------------------------


def test_docker_lets_gunicorn_finish_its_requests_when_it_stops_web():
    """On SIGTERM gunicorn finishes the requests it has for up to its graceful timeout (30 s);
    Docker's default 10 s killed them first on every `docker compose down` and upgrade."""
    web = compose()["services"]["web"]
    graceful = web_gunicorn_config().graceful_timeout

    assert seconds(web["stop_grace_period"]) > graceful >= 30


def test_postgres_has_time_to_write_its_checkpoint_when_it_stops():
    """The postgres image's fast shutdown writes a checkpoint first; on a slow disk after a big
    import that can take more than Docker's 10 s, and PostgreSQL was killed, to recover from its
    WAL at the next start (the image's notes ask for a longer stop timeout)."""
    assert seconds(compose()["services"]["postgres"]["stop_grace_period"]) >= 60


def test_health_checks_wait_out_an_upgrades_migrations():
    """web migrates before gunicorn starts, and the workers wait for it: on a big message table
    that takes minutes, and the containers read "unhealthy" meanwhile."""
    services = compose()["services"]
    for name in ("web", "worker", "worker-gpu"):
        assert seconds(services[name]["healthcheck"]["start_period"]) >= 300, name
    for name in ("web", "worker", "worker-gpu"):
        for needed in ("postgres", "redis"):
            assert services[name]["depends_on"][needed] == {"condition": "service_healthy"}


def test_the_containers_logs_do_not_grow_without_end():
    """Docker keeps a container's output without limit by default: with an access line per
    request (polls included) web's log alone grows by megabytes a day."""
    services = compose()["services"]
    for name in ("web", "worker", "worker-gpu"):
        logging = services[name]["logging"]
        assert logging["driver"] == "json-file"
        assert logging["options"]["max-size"] and int(logging["options"]["max-file"]) >= 1


# --- the image ------------------------------------------------------------------------------------


def test_the_image_installs_a_system_libpq_only_when_psycopg_has_none_of_its_own():
    """psycopg[binary] loads the libpq in its own wheel: the image's apt-get of libpq5 was an
    unused library and a build that needed Debian's mirrors."""
    requirements = (ROOT / "requirements" / "base.txt").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    binary = re.search(r"^psycopg\[binary\]==", requirements, re.M) is not None
    installs_libpq = re.search(r"apt-get install[^\n]*libpq", dockerfile) is not None

    assert binary != installs_libpq
