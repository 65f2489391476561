"""gunicorn's access log without the token of a password reset link (or of an email confirmation
link): whoever reads the log (the demo writes it to a file under data/, the web container to
`docker compose logs`) could otherwise set that member's password. The container's own health
checks are left out too."""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

# /accounts/reset/<uidb64>/<token>/ and /accounts/email/confirm/<uidb64>/<token>/: the token
# goes; the address each swaps it for (set-password, confirm-email) holds none.
_RESET_TOKEN = re.compile(
    r"(/accounts/(?:reset|email/confirm)/[^/\s?]+/)"
    r"(?!(?:set-password|confirm-email)(?:[/?\s]|$))[^/\s?\"]+"
)


def redact(text: str) -> str:
    return _RESET_TOKEN.sub(r"\1(token)", text)


class AccessLog(Logger):
    """gunicorn's logger (--logger-class joe_site.access_log.AccessLog), its access lines with
    reset and confirmation tokens left out of every field (the request line, the path, the
    Referer), and none for the container's health checks."""

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        # Imported here: gunicorn's master loads this class before Django's settings; the
        # workers that log have loaded the app.
        from joe_site.middleware import is_own_health_check

        if not is_own_health_check(environ):  # every 30 s, from docker: not a visit
            super().access(resp, req, environ, request_time)

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(v) if isinstance(v, str) else v for key, v in atoms.items()}
