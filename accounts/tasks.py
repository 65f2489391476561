"""The accounts app's jobs on the `default` worker: emailing a password reset link, and a link
to confirm a member's email."""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task

from accounts import email_confirmation, password_reset

log = logging.getLogger(__name__)

EMAIL_TRIES = 4  # the first and three more, after 1, 2 and 4 minutes
FIRST_WAIT_S = 60


@shared_task(bind=True, name="accounts.tasks.send_password_reset", max_retries=EMAIL_TRIES - 1)
def send_password_reset(
    self,  # noqa: ANN001 (the task itself)
    username_or_email: str,
    base_url: str,
    again_for: list[int] | None = None,
) -> None:
    """Takes what was typed, never a link: the link is made here, so neither the broker nor a
    log line holds one. A mail server that refuses or does not answer is tried again a few
    times, waiting longer each time, for the accounts it failed for (their ids, no link)."""
    try:
        password_reset.email_reset_links(
            username_or_email=username_or_email, base_url=base_url, again_for=again_for
        )
    except password_reset.NotEmailed as not_emailed:
        try_again_later(
            self, not_emailed, sending="the reset email", sent="a reset link",
            args=(username_or_email, base_url, not_emailed.user_ids),
        )  # fmt: skip


@shared_task(bind=True, name="accounts.tasks.send_email_confirmation", max_retries=EMAIL_TRIES - 1)
def send_email_confirmation(self, user_id: int, email: str, base_url: str) -> None:  # noqa: ANN001
    """Takes the account and the address it set, never a link (made here, as a reset link is);
    sends nothing once the account's email has changed or is confirmed. A mail server that fails
    is tried again as for reset links."""
    try:
        email_confirmation.email_link(user_id=user_id, email=email, base_url=base_url)
    except (smtplib.SMTPException, OSError) as failure:
        try_again_later(
            self, failure, sending="the email confirmation link", sent="a confirmation link"
        )


def try_again_later(  # noqa: ANN001
    task, failure: Exception, *, sending: str, sent: str, **retry_options
) -> None:
    """The mail server failed: raise the task's retry after 1, 2, then 4 minutes, or log that
    joe gave up emailing ``sent`` after EMAIL_TRIES tries."""
    tries = task.request.retries + 1
    if tries >= EMAIL_TRIES:
        log.error("Gave up emailing %s after %d tries: %s", sent, tries, failure)
        return
    wait = FIRST_WAIT_S * 2**task.request.retries
    log.warning("Trying %s again in %d s: %s", sending, wait, failure)
    raise task.retry(countdown=wait, **retry_options) from None
