"""Site-wide middleware."""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest, HttpResponse


class LocalHealthCheckMiddleware:
    """Answers ``GET /healthz`` from the machine itself before the host check and the HTTPS
    redirect, which a container's own health check cannot pass: it calls ``127.0.0.1:8000``,
    not a host in ALLOWED_HOSTS, over plain HTTP. Anyone else (a load balancer, a request a
    proxy forwards) goes through the usual checks. The answer says only "ok" or which service
    is down, as it does to anyone."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.path_info == "/healthz"
            and request.method in ("GET", "HEAD")
            and "HTTP_X_FORWARDED_FOR" not in request.META
            and _is_loopback(request.META.get("REMOTE_ADDR", ""))
        ):
            from joe_site.views import healthz

            return healthz(request)
        return self.get_response(request)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
