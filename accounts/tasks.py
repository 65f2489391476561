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
        tries = self.request.retries + 1
        if tries >= EMAIL_TRIES:
            log.error("Gave up emailing a reset link after %d tries: %s", tries, not_emailed)
            return
        wait = FIRST_WAIT_S * 2**self.request.retries
        log.warning("Trying the reset email again in %d s: %s", wait, not_emailed)
        raise self.retry(
            args=(username_or_email, base_url, not_emailed.user_ids), countdown=wait
        ) from None


@shared_task(bind=True, name="accounts.tasks.send_email_confirmation", max_retries=EMAIL_TRIES - 1)
def send_email_confirmation(self, user_id: int, email: str, base_url: str) -> None:  # noqa: ANN001
    """Takes the account and the address it set, never a link (made here, as a reset link is);
    sends nothing once the account's email has changed or is confirmed. A mail server that fails
    is tried again as for reset links."""
    try:
        email_confirmation.email_link(user_id=user_id, email=email, base_url=base_url)
    except (smtplib.SMTPException, OSError) as failure:
        tries = self.request.retries + 1
        if tries >= EMAIL_TRIES:
            log.error("Gave up emailing a confirmation link after %d tries: %s", tries, failure)
            return
        wait = FIRST_WAIT_S * 2**self.request.retries
        log.warning("Trying the email confirmation link again in %d s: %s", wait, failure)
        raise self.retry(countdown=wait) from None
