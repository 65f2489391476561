"""gunicorn's logger without the secret of a reset link or an invite (joe_site.log_redaction):
whoever reads the log (the demo writes it to a file under data/, the web container to `docker
compose logs`) could otherwise set that member's password or make an account. The container's
own health checks are left out too."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from joe_site.log_redaction import RedactSecrets, redact

_REDACT_SECRETS = RedactSecrets()  # one instance: setup() runs again on every reload


class AccessLog(Logger):
    """gunicorn's logger (--logger-class joe_site.access_log.AccessLog), its access lines with
    secrets left out of every field (the request line, the path, the Referer), none for the
    container's health checks, and its error log redacted too ("Error handling request
    /accounts/signup/<token>/")."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.addFilter(_REDACT_SECRETS)

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        # Imported here: gunicorn's master loads this class before Django's settings; the
        # workers that log have loaded the app.
        from joe_site.middleware import is_own_health_check

        if not is_own_health_check(environ):  # every 30 s, from docker: not a visit
            super().access(resp, req, environ, request_time)

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(v) if isinstance(v, str) else v for key, v in atoms.items()}
