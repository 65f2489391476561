"""The files that run joe elsewhere: docker-compose, .env.example, the production settings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_service_with_healthchecks():
    services = compose()["services"]
    assert set(services) == {"web", "worker", "worker-gpu", "postgres", "redis"}
    for name, service in services.items():
        assert "healthcheck" in service, name
    gpu_file = yaml.safe_load((ROOT / "docker-compose.gpu.yml").read_text())
    gpu = gpu_file["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "deploy" not in services["worker-gpu"]  # runs anywhere; the GPU file adds one
    assert set(compose()["volumes"]) >= {"data", "models", "pgdata"}


def test_compose_commands_point_at_real_modules():
    """The services run the image's scripts (tests/test_deploy_entrypoints.py runs them)."""
    services = compose()["services"]
    # Absolute: how a relative path resolves is up to the container runtime.
    assert services["web"]["command"] == ["/app/docker/web"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["/app/docker/web"]' in dockerfile  # `docker run joe` migrates too
    assert "WORKDIR /app" in dockerfile and "COPY . ." in dockerfile
    assert "exec gunicorn joe_site.wsgi" in (ROOT / "docker" / "web").read_text()
    assert (ROOT / "joe_site" / "wsgi.py").exists()
    for name, queue in (("worker", "default"), ("worker-gpu", "gpu")):
        command = " ".join(services[name]["command"])
        assert command.startswith("/app/docker/worker ") and f"-Q {queue}" in command
    assert "exec celery -A joe_site worker" in (ROOT / "docker" / "worker").read_text()
    assert (ROOT / "joe_site" / "celery.py").exists()
    for script in ("web", "worker"):
        assert os.access(ROOT / "docker" / script, os.X_OK), script


def test_what_compose_keeps_lives_in_named_volumes():
    """`docker compose down` (then up) drops a container's anonymous volumes: the queued jobs in
    Redis went with them, and a base model downloaded from the hub was fetched again by each
    recreated worker, into a home folder the default worker's quality report did not share."""
    services = compose()["services"]
    assert "redis:/data" in services["redis"]["volumes"]
    assert "redis" in compose()["volumes"]
    hf_home = re.search(r"HF_HOME=(\S+)", (ROOT / "Dockerfile").read_text())[1]
    assert hf_home.startswith("/data/models/")
    for name in ("worker", "worker-gpu"):
        assert "models:/data/models" in services[name]["volumes"]


def test_compose_refuses_to_start_without_the_database_password():
    """Unset, Compose put an empty password in both places with a mere warning; PostgreSQL then
    refused to initialise, restarting again and again, and web never started."""
    raw = (ROOT / "docker-compose.yml").read_text()
    uses = re.findall(r"\$\{POSTGRES_PASSWORD([^}]*)\}", raw)
    assert len(uses) == 2
    assert all(use.startswith(":?") for use in uses), uses


def test_postgres_has_room_for_parallel_work_on_a_big_message_table():
    """Docker gives a container 64 MB of /dev/shm, where PostgreSQL's parallel workers share
    their memory: on millions of messages a parallel index build or hash join fails with
    "could not resize shared memory segment" (a caveat of the postgres image)."""
    size = compose()["services"]["postgres"]["shm_size"]
    number, unit = re.fullmatch(r"(\d+)(mb|gb)", size.lower()).groups()
    assert int(number) * (1024 if unit == "gb" else 1) >= 256


def test_env_names_match_settings():
    settings_source = (ROOT / "joe_site" / "settings.py").read_text()
    read = set(re.findall(r'env_\w+\("([A-Z_]+)"', settings_source))
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert example <= read | {"POSTGRES_PASSWORD"}, example - read
    readme = (ROOT / "README.md").read_text()
    missing = {name for name in read if f"`{name}`" not in readme}
    assert not missing, f"undocumented settings: {missing}"


def test_production_env_passes_deploy_check(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}},
        "DEBUG": "0",
        "SECRET_KEY": "x" * 20 + "production-secret-from-the-environment-0123456789",
        "ALLOWED_HOSTS": "joe.example.org",
        "JOE_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    env.update(DEBUG="0", JOE_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.django_db
def test_migrations_are_complete():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_production_refuses_the_example_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    example = re.search(r"^SECRET_KEY=(.*)$", (ROOT / ".env.example").read_text(), re.M)[1]
    env.update(DEBUG="0", JOE_DATA_DIR=str(tmp_path), SECRET_KEY=example)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "SECRET_KEY is the example's placeholder" in result.stderr


def test_the_image_leaves_secrets_and_private_data_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".env", "data/", ".venv/", ".git/"):
        assert path in ignored, path
    dockerfile = (ROOT / "Dockerfile").read_text()
    # The folders the build makes as root (collectstatic's /data/tmp, the models volume's mount
    # point) belong to the user the app runs as, and to no one else.
    assert "chown -R joe /data" in dockerfile and "mkdir -p /data/models" in dockerfile


def test_git_leaves_the_env_file_and_private_data_out():
    """The README has a stranger put SECRET_KEY and POSTGRES_PASSWORD into .env in the checkout:
    a `git add .` must not commit them."""
    ignored = (ROOT / ".gitignore").read_text().split()
    for path in (".env", "data/"):
        assert path in ignored, path


def test_git_leaves_a_virtualenv_out_even_when_it_is_a_symlink():
    """A second checkout sharing the first's virtualenv links to it: with `.venv/` (folders
    only) `git add -A` committed the link, and checking that commit out in the first checkout
    deleted the real virtualenv. A pattern without the slash matches the link too."""
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".venv" in ignored


def test_the_image_collects_static_files_as_production_reads_them(tmp_path):
    """With DEBUG=0 the site serves hashed names from a manifest: collectstatic run with DEBUG=1
    writes none, and every page is then a 500."""
    line = next(
        line
        for line in (ROOT / "Dockerfile").read_text().split("\nRUN ")
        if "collectstatic" in line
    )
    assert "DEBUG=0" in line and "DEBUG=1" not in line
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    env.update(
        DEBUG="0",
        SECRET_KEY="build-only-not-a-secret-collectstatic-only-0123456789",
        JOE_DATA_DIR=str(tmp_path / "data"),
        JOE_STATIC_ROOT=str(tmp_path / "static"),
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    assert "css/joe.css" in (tmp_path / "static" / "staticfiles.json").read_text()


def test_compose_web_is_for_the_local_proxy_and_workers_keep_their_names():
    services = compose()["services"]
    assert services["web"]["ports"] == ["127.0.0.1:8000:8000"]
    for name in ("worker", "worker-gpu"):
        assert services[name]["hostname"] == name  # stable across recreated containers
        test = services[name]["healthcheck"]["test"]
        # $HOSTNAME needs a shell: the exec form would ping a worker literally named so.
        assert test[0] == "CMD-SHELL" and "$$HOSTNAME" in test[1]


def test_setup_with_another_python_says_it_needs_3_11(tmp_path):
    checkout = tmp_path / "joe"
    for folder in ("bin", "requirements"):
        shutil.copytree(ROOT / folder, checkout / folder)
    python = tmp_path / "python3.13"  # too new for the pinned torch; it does nothing else here
    python.write_text('#!/bin/sh\necho "python3.13 $*" >&2\nexit 1\n')
    python.chmod(0o755)
    env = {**os.environ, "PYTHON": str(python)}

    result = subprocess.run(
        [checkout / "bin" / "setup"], cwd=checkout, env=env, capture_output=True, text=True
    )

    assert result.returncode == 1
    assert "joe: needs Python 3.11" in result.stderr and str(python) in result.stderr
    assert not (checkout / ".venv").exists()


def markdown_section(path: Path, heading: str) -> str:
    text = path.read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return " ".join(text[start : end if end != -1 else None].split())  # lines joined


def test_the_readme_gives_the_demo_speed_that_was_measured_and_where():
    """The README said ~160 tokens/s and 'about 10 minutes' of training on '2 cores': the one
    measured demo trained at 154-164 tokens/s for 11.4 minutes, on 2 cores shared with others."""
    readme = markdown_section(ROOT / "README.md", "## What the demo does")
    measured = markdown_section(ROOT / "benchmarks" / "RESULTS.md", "## Demo")

    figures = re.findall(r"(\d[\d.,–]*) (tokens/s|minutes|messages|steps)", readme)
    assert figures
    unmeasured = [f"{n} {unit}" for n, unit in figures if f"{n} {unit}" not in measured]
    assert not unmeasured, unmeasured
    assert "2026-11-25" in readme and "2 AMD EPYC cores shared with other jobs" in readme
    assert "~" not in readme  # a figure is a measured range, not an approximation of one
