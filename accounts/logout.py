"""Logging out also asks the browser to forget what it kept of the member's pages."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse

# A shared computer: the next person must not find a friend's pages in the browser's disk cache,
# its back-forward cache, or htmx's sessionStorage. Cookies are left alone: the session cookie
# is already gone, and the CSRF cookie is needed by the login form the member lands on.
CLEAR_SITE_DATA = '"cache", "storage"'


def forget_in_browser(response: HttpResponse) -> HttpResponse:
    response["Clear-Site-Data"] = CLEAR_SITE_DATA
    return response


class LogoutView(auth_views.LogoutView):
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:  # noqa: ANN002, ANN003
        return forget_in_browser(super().post(request, *args, **kwargs))
