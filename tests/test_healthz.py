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
