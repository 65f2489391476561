"""Members as tests need them: with an email they have confirmed."""

from __future__ import annotations

from accounts.models import ConfirmedEmail


def with_confirmed_email(user, email: str):  # noqa: ANN001, ANN201
    """``user`` with ``email`` set and confirmed, as if they had opened its link."""
    user.email = email
    user.save(update_fields=["email"])
    ConfirmedEmail.objects.update_or_create(user=user, defaults={"email": email})
    return user
