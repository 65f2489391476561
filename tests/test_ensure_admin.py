"""bin/demo's first staff account: its password printed on every start until it is changed."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def ensure_admin() -> str:
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def test_the_password_is_printed_again_until_it_is_changed(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    first = ensure_admin()
    password = (tmp_path / "admin-password").read_text()
    assert f"Log in as 'admin' with password: {password}" in first
    assert (tmp_path / "admin-password").stat().st_mode & 0o777 == 0o600
    assert password in ensure_admin()

    admin = get_user_model().objects.get(username="admin")
    admin.set_password("a new one of my own 42")
    admin.save()
    again = ensure_admin()

    assert password not in again and not (tmp_path / "admin-password").exists()
    assert "manage.py changepassword admin" in again  # how in, once it is forgotten
