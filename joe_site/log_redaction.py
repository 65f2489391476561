"""The addresses of joe that carry a secret, and the one place that takes the secret out of a line
of log: gunicorn's access and error logs (joe_site.access_log) and every record Django's LOGGING
handles ("Gone: /accounts/signup/<token>/"). Whoever reads a log could otherwise use the link.

Pure ``re`` and ``logging``: gunicorn's master loads it before Django's settings exist."""

from __future__ import annotations

import logging
import re

# Each address whose path holds a bearer secret, as the part before the secret. Adding a URL with
# a token to any urls.py without adding it here fails tests/test_log_redaction.py, which walks
# the URL resolver.
SECRET_PATHS = (
    # A reset link, /accounts/reset/<uidb64>/<token>/, sets that member's password. The page it
    # leads to, /accounts/reset/<uidb64>/set-password/, holds no token (Django's own word).
    r"/accounts/reset/[^/\s?\"]+/(?!set-password(?:[/?#\s\"]|$))",
    # An invite, /accounts/signup/<token>/, makes an account on a site that is invite-only.
    r"/accounts/signup/",
    # An email confirmation link, /accounts/email/confirm/<uidb64>/<token>/, makes that address
    # the one reset links go to; the page it leads to (.../confirm-email/) holds no token.
    r"/accounts/email/confirm/[^/\s?\"]+/(?!confirm-email(?:[/?#\s\"]|$))",
)

# Addresses with a token that is left in the logs, by URL name. A share link is made to be
# published: it opens one snippet, read only, that a member chose to show strangers, and anyone
# who reads the log could see no more than the people it was posted to. The token in the log is
# what tells staff which link is being hammered or scraped, to revoke it (one click, and the
# snippet's voice can too), rather than every one a member has made.
PUBLIC_TOKEN_URLS = ("generations:share", "generations:share_image")

_SECRET = re.compile("((?:" + "|".join(SECRET_PATHS) + r"))[^/\s?#\"]+")


def redact(text: str) -> str:
    """``text`` with the secret of every joe address in it written "(token)"."""
    return _SECRET.sub(r"\1(token)", text)


class RedactSecrets(logging.Filter):
    """Rewrites a record whose message or traceback holds a secret address, the rest of the line
    kept: on a handler, it sees the records of every logger that reaches it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            return True  # arguments that do not fit: the handler reports that itself
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is written redacted too.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True
