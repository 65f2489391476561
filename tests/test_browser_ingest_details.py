"""In a real browser: the ingest pages for someone on a keyboard or with a screen reader, and
what a failed upload says."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from ingest.models import Export, Speaker
from joe_site.jobs import JobStatus
from tests.conftest import log_in
from tests.test_ingest_support import import_path, slack_export, use_tmp_upload_dir

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path / "server")


def test_every_aria_describedby_names_an_element_of_the_upload_form(staff_client):
    page = staff_client.get(reverse("ingest:exports")).content.decode()

    described = re.findall(r'aria-describedby="([^"]+)"', page)
    assert len(described) >= 4  # the file, kind, passphrase and owner fields
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    for names in described:
        assert set(names.split()) <= ids, names


def test_renaming_to_a_name_another_speaker_has_says_so(staff_client, tmp_path):
    import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]}))
    bob = Speaker.objects.get(display_name="Bob")

    response = staff_client.post(
        reverse("ingest:speaker_rename", args=[bob.pk]),
        {"display_name": "alice"},
        headers={"HX-Request": "true"},
    )

    message = json.loads(response["HX-Trigger"])["toast"]["message"]
    assert message == (
        "Renamed Bob to alice. Another speaker is also called alice: merge them if they are the "
        "same friend, or give one a name that tells them apart."
    )


@pytest.mark.browser
def test_focus_stays_on_cancel_while_the_running_import_refreshes(new_page, staff, tmp_path):
    export = Export.objects.create(
        original_name="big.zip", kind="slack", status=JobStatus.RUNNING, progress_total=10
    )
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto(export.get_absolute_url())
    page.get_by_role("button", name="Cancel import").focus()
    swaps = page.evaluate(
        """() => new Promise(resolve => {
            let n = 0;
            document.body.addEventListener("htmx:afterSwap", () => { if (++n === 2) resolve(n); });
        })"""
    )

    assert swaps == 2  # the part holding the button was replaced twice meanwhile
    assert page.evaluate("document.activeElement.textContent") == "Cancel import"


@pytest.mark.browser
def test_typing_a_name_finds_the_person_and_actions_keep_the_search(new_page, staff, tmp_path):
    import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]}))
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto(reverse("ingest:speakers"))

    page.get_by_label("Find a person").press_sequentially("bo")
    page.wait_for_url(lambda url: url.endswith("?q=bo"))
    expect = page.locator("[data-testid=speaker-name]")
    page.wait_for_function("document.querySelectorAll('[data-testid=speaker]').length === 1")
    assert expect.all_inner_texts() == ["Bob"]
    assert page.evaluate("document.activeElement.id") == "speaker-search"  # still typing

    page.get_by_role("button", name="Exclude").click()
    page.get_by_role("button", name="Include").wait_for()
    assert expect.all_inner_texts() == ["Bob"]  # the refreshed list is still the search's


@pytest.mark.browser
def test_after_a_merge_the_keyboard_carries_on_from_the_speaker_merged_into(
    new_page, staff, tmp_path
):
    import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]}))
    bob = Speaker.objects.get(display_name="Bob")
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto(reverse("ingest:speakers"))

    page.get_by_label("Merge Bob into").select_option(label="Alice")
    page.locator(f"#merge-{bob.pk}").press("Enter")
    page.get_by_text("Merged Bob into Alice.").wait_for()
    page.wait_for_function("document.activeElement !== document.body")  # once htmx settles

    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Alice"  # not the page itself, with the next Tab at its very top
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == (
        "New name for Alice"
    )


def speakers_over_two_pages(new_page, tmp_path):
    """Alice and Bob from a Slack export and 30 contacts (a phone's), so the Speakers page
    runs to a second page; staff logged in on its first."""
    import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]}))
    for n in range(30):
        Speaker.create_named(f"Contact {n:02}")
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto(reverse("ingest:speakers"))
    return page


@pytest.mark.browser
def test_after_a_merge_into_someone_on_another_page_the_keyboard_carries_on_from_them(
    new_page, staff, tmp_path
):
    """A phone's contacts fill several pages: the speaker merged into was on page 2, so its
    heading was not there to take the focus, and it fell to the page itself."""
    page = speakers_over_two_pages(new_page, tmp_path)
    alice = Speaker.objects.get(display_name="Alice")

    page.get_by_label("Merge Alice into").select_option(label="Contact 29")  # on page 2
    page.locator(f"#merge-{alice.pk}").press("Enter")
    page.get_by_text("Merged Alice into Contact 29.").wait_for()
    page.wait_for_function("document.activeElement !== document.body")  # once htmx settles

    assert page.evaluate("document.activeElement.textContent") == "Contact 29"
    assert "page=2" in page.url  # the page it is on, as a reload shows it

    # Merged into someone the search does not find: the list's count takes the focus.
    page.get_by_label("Find a person").fill("contact 0")
    page.wait_for_function("document.querySelectorAll('[data-testid=speaker]').length === 10")
    contact = Speaker.objects.get(display_name="Contact 05")
    page.get_by_label("Merge Contact 05 into").select_option(label="Bob")
    page.locator(f"#merge-{contact.pk}").press("Enter")
    page.get_by_text("Merged Contact 05 into Bob.").wait_for()
    page.wait_for_function("document.activeElement !== document.body")
    assert page.evaluate("document.activeElement.dataset.testid") == "speaker-count"


@pytest.mark.browser
def test_after_moving_an_identity_to_someone_on_another_page_the_keyboard_stays_on_it(
    new_page, staff, tmp_path
):
    """The identity's row went to a speaker on page 2, its Move button with it, and the focus
    fell to the page itself."""
    from ingest.models import Identity

    page = speakers_over_two_pages(new_page, tmp_path)
    identity = Identity.objects.get(display_name="Alice")

    page.get_by_label("Speaker for Alice").select_option(label="Contact 29")  # on page 2
    page.locator(f"#move-{identity.pk}").press("Enter")
    page.get_by_text("now speaks as Contact 29").wait_for()
    page.wait_for_function("document.activeElement !== document.body")  # once htmx settles

    assert page.evaluate("document.activeElement.id") == f"move-{identity.pk}"
    assert "page=2" in page.url


@pytest.mark.browser
def test_after_telling_the_last_suggested_pair_apart_the_keyboard_carries_on(
    new_page, staff, tmp_path
):
    """The suggestions' heading took the focus, but with the last pair told apart it was gone
    too, and the focus fell to the page itself."""
    from ingest.models import Identity

    import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]}))
    Identity.objects.create(
        source_kind="telegram",
        external_id="user7",
        display_name="Alice Park",
        speaker=Speaker.create_named("Alice Park"),
    )
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto(reverse("ingest:speakers"))

    page.get_by_role("button", name="They are two people").press("Enter")
    page.get_by_text("joe no longer suggests merging them").wait_for()
    page.wait_for_function("document.activeElement !== document.body")  # once htmx settles

    assert page.evaluate("document.activeElement.textContent") == "Alice"  # the list's first


@pytest.mark.browser
def test_on_a_phone_a_long_name_does_not_widen_the_speakers_page(new_page, staff, tmp_path):
    """Every speaker's merge list holds every name: one long name made each merge form wider
    than a phone, and the whole page scrolled sideways."""
    import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]}))
    Speaker.create_named("Alice Parkinson-Longname")
    page = new_page(viewport={"width": 360, "height": 740})
    log_in(page, "staff", "correct horse 3")
    page.goto(reverse("ingest:speakers"))

    assert page.evaluate("document.documentElement.scrollWidth") <= 360


@pytest.mark.browser
def test_an_error_toast_stays_until_dismissed(new_page, staff, tmp_path):
    import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]}))
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto(reverse("ingest:speakers"))
    page.fill("#rename-name-" + str(Speaker.objects.get(display_name="Bob").pk), " ")
    page.evaluate(
        """() => document.dispatchEvent(new CustomEvent("toast", {detail: {level: "error",
            message: "Pick two different speakers to merge."}}))"""
    )
    toast = page.locator(".toast-error", has_text="Pick two different speakers to merge.")
    toast.wait_for()
    assert toast.get_attribute("role") == "alert"

    page.wait_for_timeout(7_000)  # an information toast is gone by now

    assert toast.is_visible()
    page.get_by_role("button", name="Dismiss").click()
    assert toast.count() == 0


@pytest.mark.browser
@pytest.mark.parametrize(
    ("status", "says"),
    [
        (403, "your session may have ended"),
        (413, "bigger than the web server in front of joe accepts"),
        (502, "The server failed while taking the upload (error 502)"),
    ],
)
def test_a_failed_upload_says_why(new_page, staff, tmp_path, status, says):
    path = slack_export(tmp_path / "team.zip", {"general": [("U1", "hi")]})
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto(reverse("ingest:exports"))
    page.route(
        "**/ingest/",
        lambda route: (
            route.fulfill(status=status, body="no")
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    page.set_input_files("input[type=file]", str(path))

    page.click("text=Upload and import")

    page.locator("[data-upload] >> text=" + says).wait_for()
    assert not Export.objects.exists()


def test_the_exports_list_pages_through_every_export(staff_client, monkeypatch):
    from ingest import views

    monkeypatch.setattr(views, "EXPORTS_PER_PAGE", 2)
    for n in range(5):
        Export.objects.create(original_name=f"e{n}.zip", status=JobStatus.SUCCEEDED)
    url = reverse("ingest:exports")

    first = staff_client.get(url).content.decode()
    last = staff_client.get(url, {"page": 3}).content.decode()

    assert "e4.zip" in first and "e3.zip" in first and "e2.zip" not in first
    assert "1–2 of 5" in first and 'rel="next"' in first and 'rel="prev"' not in first
    assert "e0.zip" in last and "5–5 of 5" in last and 'rel="next"' not in last
    assert "hx-trigger" not in first.split('id="export-list"', 1)[1].split(">")[0]  # nothing runs


def test_the_exports_list_follows_a_running_import(staff_client):
    export = Export.objects.create(original_name="big.zip", status=JobStatus.RUNNING)
    url = reverse("ingest:exports")
    page = staff_client.get(url).content.decode()
    assert 'hx-trigger="every 2s"' in page.split('id="export-list"', 1)[1].split(">")[0]

    Export.objects.filter(pk=export.pk).update(status=JobStatus.SUCCEEDED)
    part = staff_client.get(url, {"list": 1}, headers={"HX-Request": "true"}).content.decode()

    assert part.lstrip().startswith('<section class="card" id="export-list"')
    assert "Succeeded" in part and "every 2s" not in part  # done: it stops polling


@pytest.mark.browser
def test_on_a_phone_a_long_file_name_does_not_widen_the_export_page(new_page, staff):
    """The export's file name is its page's heading: one without spaces ran off the screen and
    the page scrolled sideways."""
    export = Export.objects.create(
        original_name="family_group_chat_export_with_everyone.zip", kind="slack",
        status=JobStatus.SUCCEEDED,
    )  # fmt: skip
    page = new_page(viewport={"width": 390, "height": 844})
    log_in(page, "staff", "correct horse 3")
    page.goto(export.get_absolute_url())

    assert page.evaluate("document.documentElement.scrollWidth") <= 390
