"""Every form a page renders can be used with a screen reader: each control has a label, and each
aria-describedby names an element of the page."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


class _Controls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.labelled: set[str] = set()  # ids named by a <label for>
        self.controls: list[dict[str, str]] = []
        self.described: list[str] = []
        self._in_label = 0  # a control inside a <label> is labelled by it

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self._in_label:
            self._in_label -= 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "label":
            self._in_label += 1
            if a.get("for"):
                self.labelled.add(a["for"])
        if "aria-describedby" in a:
            self.described.extend(a["aria-describedby"].split())
        if tag in ("input", "select", "textarea") and a.get("type") not in (
            "hidden", "submit", "button",
        ):  # fmt: skip
            if self._in_label:
                a["aria-label"] = a.get("aria-label") or "(its label)"
            self.controls.append(a)


PAGES = ["ingest:exports", "trainer:runs", "generations:batches", "generations:live", "invites",
         "claims", "profile", "password_forgotten"]  # fmt: skip


@pytest.mark.parametrize("name", PAGES)
def test_controls_are_labelled_and_descriptions_exist(staff_client, name):
    page = staff_client.get(reverse(name))
    assert page.status_code == 200
    parsed = _Controls()
    parsed.feed(page.content.decode())

    missing = sorted(set(parsed.described) - parsed.ids)
    unlabelled = [
        c.get("name")
        for c in parsed.controls
        if not (c.get("aria-label") or c.get("aria-labelledby") or c.get("id") in parsed.labelled)
    ]
    assert missing == []
    assert unlabelled == []
