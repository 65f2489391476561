"""The accounts app's one job on the `default` worker: emailing a password reset link."""

from __future__ import annotations

from celery import shared_task

from accounts import password_reset


@shared_task(name="accounts.tasks.send_password_reset")
def send_password_reset(username_or_email: str, base_url: str) -> None:
    """Takes what was typed, never a link: the link is made here, so neither the broker nor a
    log line holds one."""
    password_reset.email_reset_links(username_or_email=username_or_email, base_url=base_url)
