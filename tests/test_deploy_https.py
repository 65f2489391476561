"""What a browser is told over HTTPS in production (DEBUG=0 behind the TLS proxy), asked of a
fresh process that reads the settings from its environment as the containers do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ASK = """
import json
from django.test import Client
response = Client().get("/", headers={"host": "joe.example.org", "x-forwarded-proto": "https"})
print(json.dumps(dict(response.headers)))
"""


def headers_in_production(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEBUG", "JOE_"))}
    env.update(
        DEBUG="0",
        SECRET_KEY="x" * 20 + "production-secret-from-the-environment-0123456789",
        ALLOWED_HOSTS="joe.example.org",
        JOE_BEHIND_PROXY="1",
        JOE_DATA_DIR=str(tmp_path),
        **extra,
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", ASK],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_hsts_covers_the_site_and_its_subdomains_only_when_asked(tmp_path):
    """joe on an apex domain must not, by default, make browsers refuse plain HTTP for a year on
    every other host under it."""
    assert headers_in_production(tmp_path)["Strict-Transport-Security"] == "max-age=31536000"

    asked = headers_in_production(tmp_path, JOE_HSTS_INCLUDE_SUBDOMAINS="1")

    assert asked["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
