"""A second read of the session's changes: email confirmation seen from the admin, the proxy's
log and the worker, and the bits of self-hosting around them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from accounts.models import ConfirmedEmail
from tests.builders.members import with_confirmed_email

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


# --- the admin ----------------------------------------------------------------------------------


def change_form(member, **changes) -> dict:  # noqa: ANN001
    """The admin's change form for ``member`` as it stands, with ``changes``."""
    data = {
        "username": member.username,
        "first_name": member.first_name,
        "last_name": member.last_name,
        "email": member.email,
        "is_active": "on",
        "date_joined_0": member.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": member.date_joined.strftime("%H:%M:%S"),
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_staff_see_the_confirmed_email_read_only_in_the_admin(staff_client, member):
    with_confirmed_email(member, "alice@example.org")
    member.email = "alice@new.example.org"  # set on Me, not confirmed yet
    member.save(update_fields=["email"])

    page = staff_client.get(reverse("admin:auth_user_change", args=[member.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "alice@example.org (confirmed " in html  # where reset links go, not the one on Me
    assert 'name="forget_confirmed_email"' in html
    assert "alice@example.org" not in re.findall(r'<input[^>]*name="email"[^>]*>', html)[0]


def test_staff_can_delete_a_confirmed_email_so_that_no_more_links_go_there(staff_client, member):
    with_confirmed_email(member, "alice@example.org")

    saved = staff_client.post(
        reverse("admin:auth_user_change", args=[member.pk]),
        change_form(member, forget_confirmed_email="on"),
    )

    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert not ConfirmedEmail.objects.filter(user=member).exists()


def test_an_email_emptied_in_the_admin_takes_its_confirmation_with_it(staff_client, member):
    with_confirmed_email(member, "alice@example.org")

    saved = staff_client.post(
        reverse("admin:auth_user_change", args=[member.pk]), change_form(member, email="")
    )

    assert saved.status_code == 302, saved.content.decode()[:2000]
    member.refresh_from_db()
    assert member.email == "" and not ConfirmedEmail.objects.filter(user=member).exists()


def test_an_email_changed_in_the_admin_waits_for_its_member_and_links_keep_their_address(
    staff_client, member
):
    with_confirmed_email(member, "alice@example.org")

    saved = staff_client.post(
        reverse("admin:auth_user_change", args=[member.pk]),
        change_form(member, email="alice@new.example.org"),
    )

    assert saved.status_code == 302, saved.content.decode()[:2000]
    member.refresh_from_db()
    assert ConfirmedEmail.of(member).email == "alice@example.org"
    assert ConfirmedEmail.waiting_for(member) == "alice@new.example.org"


def test_a_member_with_no_confirmed_email_shows_none_in_the_admin(staff_client, member):
    page = staff_client.get(reverse("admin:auth_user_change", args=[member.pk]))

    assert page.status_code == 200
    assert "emails this member no link" in page.content.decode()


# --- the proxy's log ----------------------------------------------------------------------------


def test_the_readmes_nginx_keeps_every_link_token_out_of_its_log():
    """gunicorn's access log leaves out the tokens of reset and email confirmation links; the
    README's nginx, in front of it, logged the confirmation links' tokens."""
    readme = (ROOT / "README.md").read_text()
    nginx = re.search(r"```nginx\n(.*?)```", readme, re.S)[1]
    unlogged = re.findall(r"location (\S+) \{[^}]*access_log off;", nginx)
    for path in (
        reverse("password_reset_confirm", args=["MQ", "token"]),
        reverse("confirm_email", args=["MQ", "token"]),
    ):
        assert any(path.startswith(prefix) for prefix in unlogged), path


# --- a Signal backup's passphrase, read by the worker -------------------------------------------


@pytest.fixture
def signal_upload(settings, tmp_path, staff_client, queued, django_capture_on_commit_callbacks):
    """A Signal backup uploaded with its passphrase (kept in the real Redis), its import queued
    and not run yet: (export, passphrase key)."""
    from ingest.models import Export
    from tests.signal_writer import FIXTURE_MESSAGES, write_backup
    from tests.test_ingest_support import PASSPHRASE, upload, use_tmp_upload_dir

    use_tmp_upload_dir(settings, tmp_path / "server")
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    with django_capture_on_commit_callbacks(execute=True):
        export = upload(staff_client, path, passphrase=PASSPHRASE)
    assert queued == [(export.pk, queued[0][1])], queued
    return Export.objects.get(pk=export.pk), queued[0][1]


def run_import(export, key: str) -> None:  # noqa: ANN001
    from ingest import tasks

    tasks.import_export.apply(args=(export.pk, key), task_id=export.celery_task_id)
    export.refresh_from_db()


def test_a_worker_that_saw_redis_fail_a_moment_ago_still_reads_the_passphrase(
    settings, redis_url, signal_upload
):
    """The worker's process took Redis as down for 10 s after a call failed (Redis restarted
    while it deleted the last import's passphrase, say): the next import, sent by a Redis that
    answers again, missed its passphrase and failed saying joe no longer had it."""
    from django.core.cache import cache

    from joe_site import cache as fail_soft
    from joe_site.jobs import JobStatus

    settings.CACHES = {"default": fail_soft.redis_cache(redis_url)}
    export, key = signal_upload
    fail_soft.note_failed(cache.url, "Connection refused (a moment ago)")

    run_import(export, key)

    assert export.status == JobStatus.SUCCEEDED, export.error
    assert not fail_soft.failed_lately(cache.url)  # it answered: up again for everyone


def test_a_worker_that_cannot_reach_redis_says_so_not_that_the_passphrase_expired(
    settings, signal_upload
):
    from ingest import services
    from joe_site import cache as fail_soft
    from joe_site.jobs import JobStatus
    from tests.test_jobs_lost_messages import CLOSED_PORT

    export, key = signal_upload
    settings.CACHES = {"default": fail_soft.redis_cache(CLOSED_PORT)}

    run_import(export, key)

    assert (export.status, export.error) == (JobStatus.FAILED, services.SIGNAL_KEY_NOT_KEPT)
    assert export.has_file and services.retry_helps(export.error)


def test_a_confirmed_email_deleted_in_the_admin_cannot_be_confirmed_again_with_its_old_link(
    staff_client, member, client
):
    """A confirmation link is good until its address is confirmed, then dead; staff deleting the
    confirmation (a mailbox the member lost) brought the used link back to life for 3 days."""
    from accounts import email_confirmation

    member.email = "alice@example.org"
    member.save(update_fields=["email"])
    used = email_confirmation.confirm_path(member)
    assert email_confirmation.confirm(member, used.rstrip("/").rsplit("/", 1)[1]) is None
    assert ConfirmedEmail.objects.get(user=member).email == "alice@example.org"

    saved = staff_client.post(
        reverse("admin:auth_user_change", args=[member.pk]),
        change_form(member, forget_confirmed_email="on"),
    )

    assert saved.status_code == 302, saved.content.decode()[:2000]
    member.refresh_from_db()
    assert member.email == "" and not ConfirmedEmail.objects.filter(user=member).exists()
    assert client.get(used).status_code == 410


# --- the site's own log --------------------------------------------------------------------------


def test_a_reset_link_refused_while_its_account_is_deactivated_leaves_no_token_in_the_log(
    client, member
):
    """Django logs each 4xx answer with its path: "Gone: /accounts/reset/<uidb64>/<token>/". A
    link opened while its account was deactivated is refused (410), and works again once the
    account is active again: whoever read that line could set the member's password."""
    import io
    import logging

    from accounts import password_reset

    link = password_reset.reset_path(member)
    token = link.rstrip("/").rsplit("/", 1)[1]
    member.is_active = False
    member.save(update_fields=["is_active"])
    console = next(h for h in logging.getLogger().handlers if h.name == "console")
    written = io.StringIO()
    saved = console.setStream(written)
    try:
        refused = client.get(link)
    finally:
        console.setStream(saved)

    assert refused.status_code == 410
    assert "Gone: /accounts/reset/" in written.getvalue() and token not in written.getvalue()
    member.is_active = True
    member.save(update_fields=["is_active"])
    assert client.get(link).status_code == 302  # the token is live again
