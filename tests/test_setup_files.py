"""The files that run joe elsewhere: docker-compose, .env.example, the production settings."""

from __future__ import annotations

import os
import re
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
    gpu = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert set(compose()["volumes"]) >= {"data", "models", "pgdata"}


def test_compose_commands_point_at_real_modules():
    services = compose()["services"]
    assert "joe_site.wsgi" in " ".join(services["web"]["command"])
    assert (ROOT / "joe_site" / "wsgi.py").exists()
    for name, queue in (("worker", "default"), ("worker-gpu", "gpu")):
        command = " ".join(services[name]["command"])
        assert "-A joe_site" in command and f"-Q {queue}" in command
    assert (ROOT / "joe_site" / "celery.py").exists()


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
