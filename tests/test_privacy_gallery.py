"""The gallery's voice filter names no one the gallery could not show: a guessed slug of a
phone backup's contact, of someone staff excluded, or of a voice with nothing on show reads
as an unknown filter."""

from __future__ import annotations

import pytest

from generations.models import SnippetStatus
from tests.builders.snippets import make_snippet, make_speaker

pytestmark = pytest.mark.django_db


def asked_for(member_client, slug: str):
    response = member_client.get(f"/gallery/?speaker={slug}")
    assert response.status_code == 200
    return response


@pytest.mark.parametrize("htmx", [False, True])
def test_a_guessed_slug_of_a_contact_with_no_fake_names_nobody(member_client, ann, htmx):
    make_snippet((ann, "from ann"))
    make_speaker("Carol Contact", slug="carol")  # a backup's one-to-one contact
    headers = {"HX-Request": "true"} if htmx else {}

    response = member_client.get("/gallery/?speaker=carol", headers=headers)

    html = response.content.decode()
    assert "Carol Contact" not in html and 'value="carol"' not in html
    assert "from ann" in html  # everyone, as for a slug that names no one
    assert response.context["speaker"] is None


def test_a_voice_whose_fakes_are_all_hidden_or_waiting_names_nobody(member_client, ann, bo):
    make_snippet((ann, "from ann"))
    make_snippet((bo, "hidden one"), status=SnippetStatus.HIDDEN)
    make_snippet((bo, "waiting one"), status=SnippetStatus.TRIAGE)

    response = asked_for(member_client, "bo")

    html = response.content.decode()
    assert response.context["speaker"] is None
    assert ">Bo<" not in html and 'value="bo"' not in html and "&amp;speaker=bo" not in html
    assert "hidden one" not in html and "waiting one" not in html and "from ann" in html


def test_a_contact_opted_out_with_no_fake_ever_shown_is_not_named(member_client, ann):
    make_snippet((ann, "from ann"))
    make_speaker("Dee Excluded", slug="dee", opted_out=True)

    html = asked_for(member_client, "dee").content.decode()

    assert "Dee Excluded" not in html and "opted out" not in html


def test_a_voice_with_a_fake_on_show_still_filters(member_client, ann, bo):
    make_snippet((ann, "from ann"))
    make_snippet((ann, "together"), (bo, "yes"))

    response = asked_for(member_client, "bo")

    assert response.context["speaker"] == bo
    html = response.content.decode()
    assert "together" in html and "from ann" not in html


def test_a_friend_who_opted_out_after_their_fakes_were_shown_is_still_explained(
    member_client, ann, bo
):
    make_snippet((bo, "bo was here"))
    bo.opted_out = True
    bo.save()

    html = asked_for(member_client, "bo").content.decode()

    assert "opted out of joe: fakes in their voice are hidden" in html
    assert "bo was here" not in html
