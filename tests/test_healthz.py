from __future__ import annotations

import pytest
from django.db import OperationalError

pytestmark = pytest.mark.django_db


def test_healthz_is_public_and_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "failed": []}


def test_healthz_names_a_dead_broker(client, settings, redis_url):
    from joe_site.celery import app

    old = app.conf.broker_url
    settings.CELERY_BROKER_URL = app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/healthz")
    finally:
        settings.CELERY_BROKER_URL = app.conf.broker_url = old
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker: OperationalError"]


def test_healthz_names_a_dead_database(client, monkeypatch):
    from django.db import connection

    def broken_cursor(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failed"][0] == "database: OperationalError"


def test_the_containers_own_health_check_passes_the_production_checks(client, settings):
    """compose's health check calls http://127.0.0.1:8000/healthz from inside the container:
    not a host in ALLOWED_HOSTS, not HTTPS. From anywhere else the usual checks apply."""
    settings.ALLOWED_HOSTS = ["joe.example.org"]
    settings.SECURE_SSL_REDIRECT = True

    local = client.get("/healthz", HTTP_HOST="127.0.0.1:8000", REMOTE_ADDR="127.0.0.1")
    assert local.status_code == 200 and local.json()["status"] == "ok"

    outside = client.get("/healthz", HTTP_HOST="127.0.0.1:8000", REMOTE_ADDR="203.0.113.9")
    assert outside.status_code == 400  # DisallowedHost
    forwarded = client.get(
        "/healthz", HTTP_HOST="evil.test", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4"
    )
    assert forwarded.status_code == 400
    # Only the health check: any other page from 127.0.0.1 still needs an allowed host.
    assert client.get("/", HTTP_HOST="127.0.0.1:8000", REMOTE_ADDR="127.0.0.1").status_code == 400
    proper = client.get("/healthz", HTTP_HOST="joe.example.org", REMOTE_ADDR="203.0.113.9")
    assert proper.status_code == 301  # to https, as any other page


def test_pages_carry_a_content_security_policy(client):
    """No inline script or on* handler may run, whatever slipped into a page."""
    policy = client.get("/accounts/login/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("style-src")[0]
    assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy


def test_no_template_has_inline_script_or_handlers():
    import re
    from pathlib import Path

    templates = Path(__file__).resolve().parents[1] / "templates"
    for path in templates.rglob("*.html"):
        text = path.read_text()
        assert not re.search(r"\son[a-z]+\s*=", text), f"inline handler in {path}"
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, f"inline script in {path}"
