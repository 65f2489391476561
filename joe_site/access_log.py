"""gunicorn's access log without the token of a password reset link: whoever reads the log (the
demo writes it to a file under data/) could otherwise set that member's password."""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

# /accounts/reset/<uidb64>/<token>/: the token goes; the set-password page's address holds none.
_RESET_TOKEN = re.compile(r"(/accounts/reset/[^/\s?]+/)(?!set-password(?:[/?\s]|$))[^/\s?\"]+")


def redact(text: str) -> str:
    return _RESET_TOKEN.sub(r"\1(token)", text)


class AccessLog(Logger):
    """gunicorn's logger (--logger-class joe_site.access_log.AccessLog), its access lines with
    reset tokens left out of every field: the request line, the path, the Referer."""

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(v) if isinstance(v, str) else v for key, v in atoms.items()}
