"""The Django admin: what it may change without going around the site's own rules."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ingest.models import Export
from tests.test_ingest_support import slack_export, stored_export, use_tmp_upload_dir

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path / "server")


def test_exports_are_only_looked_at_in_the_admin(staff_client, tmp_path):
    export = stored_export(slack_export(tmp_path / "slack.zip", {"general": [("U1", "hi")]}))

    page = staff_client.get(reverse("admin:ingest_export_change", args=[export.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    assert export.file.name not in html  # no link to the upload, which nothing serves
    assert "View on site" in html  # where it is deleted, with its file and people
    assert reverse("admin:ingest_export_delete", args=[export.pk]) not in html
    assert (
        staff_client.post(
            reverse("admin:ingest_export_delete", args=[export.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert staff_client.get(reverse("admin:ingest_export_add")).status_code == 403
    changelist = staff_client.post(
        reverse("admin:ingest_export_changelist"),
        {"action": "delete_selected", "_selected_action": [export.pk], "post": "yes"},
    )
    assert changelist.status_code in (200, 302)
    assert Export.objects.filter(pk=export.pk).exists() and export.has_file


def _rows(n: int) -> None:
    """``n`` rows of each admin list, each pointing at people of its own (and n speakers)."""
    from django.contrib.auth import get_user_model

    from accounts.models import Invite
    from generations.models import LiveGeneration, ShareLink
    from ingest.models import Identity, Speaker
    from tests.builders.snippets import make_snippet

    User = get_user_model()
    start = Speaker.objects.count()
    for i in range(start, start + n):
        user = User.objects.create_user(username=f"friend{i}")
        speaker = Speaker.objects.create(display_name=f"Friend {i}", slug=f"f{i}", member=user)
        Identity.objects.create(
            source_kind="slack", external_id=f"U{i}", display_name=f"f{i}", speaker=speaker
        )
        snippet = make_snippet((speaker, f"hello {i}"))
        ShareLink.objects.create(snippet=snippet, created_by=user)
        LiveGeneration.objects.create(member=user, speaker=speaker)
        Invite.objects.create(note=f"for {i}", created_by=user, used_by=user)


@pytest.mark.parametrize(
    "changelist",
    [
        "ingest_speaker",
        "ingest_identity",
        "generations_snippet",
        "generations_sharelink",
        "generations_livegeneration",
        "accounts_invite",
    ],
)
def test_admin_lists_take_as_many_queries_for_many_rows_as_for_few(staff_client, changelist):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse(f"admin:{changelist}_changelist")
    _rows(2)
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(url).status_code == 200
    _rows(20)
    with CaptureQueriesContext(connection) as many:
        assert staff_client.get(url).status_code == 200

    assert len(many) == len(few)


def test_the_admin_changes_neither_a_speakers_consent_nor_their_models_token(staff_client):
    from django.utils import timezone

    from ingest.models import Speaker

    speaker = Speaker.objects.create(
        display_name="Ann", slug="ann", opted_out=True, opted_out_at=timezone.now()
    )
    url = reverse("admin:ingest_speaker_change", args=[speaker.pk])

    response = staff_client.post(
        url,
        {"display_name": "Annie", "slug": "annie", "member": "", "game_opt_in": "on",
         "former_ids": "[]", "created_at_0": "2026-01-01", "created_at_1": "12:00:00"},
    )  # fmt: skip

    assert response.status_code == 302, response.context["adminform"].form.errors
    speaker.refresh_from_db()
    assert (speaker.display_name, speaker.slug) == ("Annie", "ann")
    assert speaker.opted_out and not speaker.game_opt_in


def test_a_speaker_is_linked_and_unlinked_on_the_claims_page_not_in_the_admin(
    staff_client, member, other_member
):
    """Unlinked in the admin, a wrong member's game opt-in stayed on (unlink_speaker turns it
    off); linked there, a member got someone else's opt-out to undo, with no question asked."""
    from django.utils import timezone

    from ingest.models import Speaker

    ann = Speaker.objects.create(display_name="Ann", slug="ann", member=member, game_opt_in=True)
    bo = Speaker.objects.create(
        display_name="Bo", slug="bo", opted_out=True, opted_out_at=timezone.now()
    )
    for speaker, posted in ((ann, ""), (bo, other_member.pk)):
        response = staff_client.post(
            reverse("admin:ingest_speaker_change", args=[speaker.pk]),
            {"display_name": speaker.display_name, "member": posted, "former_ids": "[]",
             "created_at_0": "2026-01-01", "created_at_1": "12:00:00"},
        )  # fmt: skip
        assert response.status_code == 302, response.context["adminform"].form.errors

    ann.refresh_from_db(), bo.refresh_from_db()
    assert (ann.member, ann.game_opt_in, bo.member) == (member, True, None)


def test_a_speaker_is_not_deleted_from_the_admin(staff_client):
    from ingest.models import Speaker
    from tests.builders.snippets import make_snippet

    speaker = Speaker.objects.create(display_name="Ann", slug="ann", opted_out=True)
    make_snippet((speaker, "a fake in Ann's voice"))

    delete = reverse("admin:ingest_speaker_delete", args=[speaker.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    staff_client.post(
        reverse("admin:ingest_speaker_changelist"),
        {"action": "delete_selected", "_selected_action": [speaker.pk], "post": "yes"},
    )

    assert Speaker.objects.filter(pk=speaker.pk, opted_out=True).exists()
    assert speaker.snippets.exists()


def test_the_admin_cannot_bring_back_messages_their_author_deleted(staff_client):
    from django.utils import timezone

    from ingest.models import Identity

    identity = Identity.objects.create(
        source_kind="slack", external_id="U1", display_name="ann", excluded=True,
        messages_deleted_at=timezone.now(),
    )  # fmt: skip
    url = reverse("admin:ingest_identity_change", args=[identity.pk])

    response = staff_client.post(
        url,
        {"source_kind": "slack", "external_id": "U1", "display_name": "ann", "speaker": "",
         "excluded": "on", "messages_deleted_at_0": "", "messages_deleted_at_1": "",
         "created_at_0": "2026-01-01", "created_at_1": "12:00:00"},
    )  # fmt: skip

    assert response.status_code == 302, response.context["adminform"].form.errors
    identity.refresh_from_db()
    assert identity.messages_deleted_at is not None


def test_a_run_is_made_active_on_its_page_not_in_the_admin(staff_client):
    """Ticked there, a failed run with no checkpoint became the model the gallery generates
    with (make_active refuses it), and unticked there the active model could be deleted."""
    from joe_site.jobs import JobStatus
    from trainer.models import TrainingRun

    failed = TrainingRun.objects.create(name="broken", status=JobStatus.FAILED)
    url = reverse("admin:trainer_trainingrun_change", args=[failed.pk])
    form = staff_client.get(url).context["adminform"].form
    data = {name: "" if value is None else value for name, value in form.initial.items()}
    data.update({"is_active": "on", "status": JobStatus.SUCCEEDED, "activate_on_success": "on",
                 "created_at_0": "2026-01-01", "created_at_1": "12:00:00"})  # fmt: skip
    data = {name: value for name, value in data.items() if value is not False}

    response = staff_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    failed.refresh_from_db()
    assert (failed.is_active, failed.status, failed.activate_on_success) == (
        False, JobStatus.FAILED, False
    )  # fmt: skip


def test_runs_and_batches_are_started_on_the_site_and_a_generating_batch_is_not_deleted(
    staff_client,
):
    from generations.models import GenerationBatch
    from joe_site.jobs import JobStatus
    from trainer.models import TrainingRun

    assert staff_client.get(reverse("admin:trainer_trainingrun_add")).status_code == 403
    assert staff_client.get(reverse("admin:generations_generationbatch_add")).status_code == 403
    run = TrainingRun.objects.create(name="done", status=JobStatus.SUCCEEDED)
    generating = GenerationBatch.objects.create(run=run, status=JobStatus.RUNNING)
    done = GenerationBatch.objects.create(run=run, status=JobStatus.SUCCEEDED)

    for batch in (generating, done):
        staff_client.post(
            reverse("admin:generations_generationbatch_changelist"),
            {"action": "delete_selected", "_selected_action": [batch.pk], "post": "yes"},
        )
        url = reverse("admin:generations_generationbatch_delete", args=[batch.pk])
        staff_client.post(url, {"post": "yes"})

    assert list(GenerationBatch.objects.all()) == [generating]


def test_an_excluded_identity_is_not_deleted_from_the_admin(staff_client, tmp_path):
    from ingest.models import Identity, Message
    from tests.test_ingest_support import import_path

    path = slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]})
    import_path(path)
    alice = Identity.objects.get(external_id="U1")
    alice.set_excluded(True)

    staff_client.post(reverse("admin:ingest_identity_delete", args=[alice.pk]), {"post": "yes"})
    staff_client.post(
        reverse("admin:ingest_identity_changelist"),
        {"action": "delete_selected", "_selected_action": [alice.pk], "post": "yes"},
    )
    import_path(path)  # the same export again: Alice's messages stay out of training

    assert Identity.objects.get(external_id="U1").excluded
    assert Message.objects.filter(identity__external_id="U1").count() == 1


def test_a_vote_deleted_or_changed_in_the_admin_counts_in_the_score(staff_client, member, ann):
    from generations.models import Vote
    from generations.votes import set_vote
    from tests.builders.snippets import make_snippet

    snippet = make_snippet((ann, "a fake"))
    set_vote(member=member, snippet_id=snippet.pk, value=1)
    vote = Vote.objects.get()

    staff_client.post(
        reverse("admin:generations_vote_change", args=[vote.pk]),
        {"user": member.pk, "snippet": snippet.pk, "value": "-1",
         "created_at_0": "2026-01-01", "created_at_1": "12:00:00"},
    )  # fmt: skip
    snippet.refresh_from_db()
    assert (snippet.upvotes, snippet.downvotes, snippet.score) == (0, 1, -1)

    staff_client.post(
        reverse("admin:generations_vote_changelist"),
        {"action": "delete_selected", "_selected_action": [vote.pk], "post": "yes"},
    )
    snippet.refresh_from_db()
    assert (Vote.objects.count(), snippet.downvotes, snippet.score) == (0, 0, 0)


def test_an_identity_moved_in_the_admin_is_remembered_by_its_new_speaker(staff_client):
    from ingest.models import Identity, Speaker

    sam = Speaker.objects.create(display_name="Sam", slug="sam")
    samuel = Speaker.objects.create(display_name="Samuel", slug="samuel")
    identity = Identity.objects.create(
        source_kind="slack", external_id="U3", display_name="sam", speaker=sam
    )

    response = staff_client.post(
        reverse("admin:ingest_identity_change", args=[identity.pk]),
        {"source_kind": "slack", "external_id": "U3", "display_name": "sam",
         "speaker": samuel.pk, "created_at_0": "2026-01-01", "created_at_1": "12:00:00"},
    )  # fmt: skip

    assert response.status_code == 302, response.context["adminform"].form.errors
    identity.refresh_from_db()
    samuel.refresh_from_db()
    assert identity.speaker == samuel and sam.pk in samuel.former_ids


def test_an_identity_moved_or_excluded_in_the_admin_flags_the_runs_that_learnt_it(staff_client):
    """As on the Speakers page: the runs that learnt it in its old voice looked current."""
    from ingest.models import Identity, Speaker
    from joe_site.jobs import JobStatus
    from tests.test_trainer_runs import reasons
    from trainer.models import RetrainReason, TrainingRun

    bo, ann = Speaker.create_named("Bo"), Speaker.create_named("Ann")
    phone, guest, work = (
        Identity.objects.create(source_kind="slack", external_id=uid, display_name=name, speaker=bo)
        for uid, name in (("U1", "Bo P"), ("U2", "Guest"), ("U3", "Bo W"))
    )
    run = TrainingRun.objects.create(name="v1", status=JobStatus.SUCCEEDED, speaker_ids=[bo.pk])

    def flag_after(identity: Identity, **changes: object) -> list[str]:
        RetrainReason.objects.filter(run=run).delete()
        data = {"source_kind": "slack", "external_id": identity.external_id,
                "display_name": identity.display_name, "speaker": bo.pk,
                "created_at_0": "2026-01-01", "created_at_1": "12:00:00", **changes}  # fmt: skip
        response = staff_client.post(
            reverse("admin:ingest_identity_change", args=[identity.pk]), data, follow=True
        )
        assert "marked “needs retrain” (1)" in response.content.decode()
        return reasons(run)

    assert flag_after(phone, speaker=ann.pk) == [
        "Bo P (Slack export) moved from Bo to Ann after this run was trained."
    ]
    assert flag_after(work, speaker="") == [
        "Bo W (Slack export) was taken off Bo after this run was trained."
    ]
    assert flag_after(guest, excluded="on") == [
        "Guest (Slack export) was excluded from training after this run learnt from it."
    ]


def test_staff_may_opt_out_a_friend_in_the_admin_as_the_friend_would(staff_client):
    from generations.models import ShareLink
    from ingest.models import Speaker
    from joe_site.jobs import JobStatus
    from tests.builders.snippets import make_snippet
    from trainer.models import TrainingRun

    cy = Speaker.objects.create(display_name="Cy", slug="cy")
    run = TrainingRun.objects.create(name="r", status=JobStatus.SUCCEEDED, speaker_ids=[cy.pk])
    link = ShareLink.objects.create(snippet=make_snippet((cy, "a fake")))

    staff_client.post(
        reverse("admin:ingest_speaker_change", args=[cy.pk]),
        {"display_name": "Cy", "slug": "cy", "member": "", "opted_out": "on",
         "created_at_0": "2026-01-01", "created_at_1": "12:00:00"},
    )  # fmt: skip

    cy.refresh_from_db()
    assert cy.opted_out and cy.opted_out_at is not None
    assert TrainingRun.objects.get(pk=run.pk).needs_retrain
    assert ShareLink.objects.get(pk=link.pk).revoked_at is not None


def test_deleting_a_chat_in_the_admin_counts_its_messages_instead_of_listing_them(
    staff_client, tmp_path
):
    from ingest.models import Conversation, Message
    from tests.test_ingest_support import import_path

    lines = [("U1", f"private {n}") for n in range(300)]
    import_path(slack_export(tmp_path / "s.zip", {"secret": lines, "general": [("U2", "hi")]}))
    secret = Conversation.objects.get(title__contains="secret")
    url = reverse("admin:ingest_conversation_delete", args=[secret.pk])

    page = staff_client.get(url).content.decode()

    assert "private 1" not in page and "300" in page
    assert staff_client.post(url, {"post": "yes"}).status_code == 302
    assert not Conversation.objects.filter(pk=secret.pk).exists()
    assert list(Message.objects.values_list("text", flat=True)) == ["hi"]


def test_the_message_list_reads_no_whole_table_and_narrows_by_export_or_speaker(
    staff_client, tmp_path
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ingest.models import Message, Speaker
    from ingest.services import import_export

    path = slack_export(tmp_path / "slack.zip", {"general": [("U1", "hi"), ("U2", "hello")]})
    export = import_export(export_id=stored_export(path).pk)
    url = reverse("admin:ingest_message_changelist")

    page = staff_client.get(url)

    html = page.content.decode()
    assert f"export__id__exact={export.pk}" in html
    speaker = Speaker.objects.get(identities__messages__text="hi")
    assert f"identity__speaker__id__exact={speaker.pk}" in html
    with CaptureQueriesContext(connection) as queries:
        narrowed = staff_client.get(url, {"identity__speaker__id__exact": speaker.pk})
    assert narrowed.context["cl"].result_count == 1 == Message.objects.filter(text="hi").count()
    sql = [q["sql"] for q in queries.captured_queries if '"ingest_message"' in q["sql"]]
    assert not [q for q in sql if "COUNT(" in q and "WHERE" not in q]  # the whole table's
    assert not [q for q in sql if "sent_at" in q.split("ORDER BY")[-1] or "MIN(" in q]


def test_the_admin_neither_deletes_nor_demotes_the_last_active_superuser(staff_client, staff):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    delete = reverse("admin:auth_user_delete", args=[staff.pk])
    change = reverse("admin:auth_user_change", args=[staff.pk])
    form = {
        "username": "staff", "is_active": "on", "is_staff": "on",
        "date_joined_0": "2026-01-01", "date_joined_1": "10:00:00",
    }  # fmt: skip

    asked = staff_client.get(delete).content.decode()
    staff_client.post(delete, {"post": "yes"})
    staff_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [staff.pk], "post": "yes"},
    )
    demoted = staff_client.post(change, form)
    unstaffed = staff_client.post(change, {**form, "is_superuser": "on", "is_staff": ""})

    assert "staff is the last active superuser" in asked
    assert "staff is the last active superuser" in demoted.content.decode()
    assert "staff is the last active superuser" in unstaffed.content.decode()
    staff.refresh_from_db()
    assert staff.is_superuser and staff.is_active and staff.is_staff
    other = User.objects.create_superuser(username="other", password="x" * 12)
    assert staff_client.post(change, form).status_code == 302  # someone else can run it now
    staff.refresh_from_db()
    assert not staff.is_superuser
    staff_client.force_login(other)
    staff_client.post(delete, {"post": "yes"})
    assert not User.objects.filter(pk=staff.pk).exists()


def test_deleting_a_chat_in_the_admin_flags_the_runs_that_learnt_from_it(
    staff_client, tmp_path, django_capture_on_commit_callbacks
):
    """As deleting its export does: the active model trained on the private chat staff took
    out of the corpus kept looking current."""
    from django.utils import timezone

    from ingest.models import Conversation, Speaker
    from joe_site.jobs import JobStatus
    from tests.test_ingest_support import import_path
    from tests.test_trainer_runs import reasons
    from trainer.models import TrainingRun

    import_path(slack_export(tmp_path / "s.zip", {"secret": [("U1", "private")]}))
    ids = list(Speaker.objects.values_list("pk", flat=True))
    run = TrainingRun.objects.create(
        name="v1", status=JobStatus.SUCCEEDED, speaker_ids=ids, started_at=timezone.now()
    )
    secret = Conversation.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            reverse("admin:ingest_conversation_delete", args=[secret.pk]), {"post": "yes"}
        )

    assert reasons(run) == [f"The chat “{secret}” was deleted after this run was trained on it."]


def test_the_admin_lists_which_runs_need_a_retrain_and_shows_why_without_an_edit(
    staff_client, django_assert_max_num_queries
):
    """The reasons are given and taken back by what happens to the corpus (an opt-in takes back
    the friend's own): edited here, a run could look current while a friend is still out."""
    from accounts import consent
    from ingest.models import Speaker
    from joe_site.jobs import JobStatus
    from tests.test_trainer_runs import flagged
    from trainer.models import TrainingRun

    bo = Speaker.create_named("Bo <b>")
    run = TrainingRun.objects.create(name="v1", status=JobStatus.SUCCEEDED, speaker_ids=[bo.pk])
    consent.set_opted_out(speaker=bo, opted_out=True)
    flagged(run, "family.zip was deleted after this run was trained on it.")
    for n in range(4):
        flagged(TrainingRun.objects.create(name=f"flagged {n}"), "Ann opted out.")
        TrainingRun.objects.create(name=f"current {n}")
    changelist = reverse("admin:trainer_trainingrun_changelist")

    with django_assert_max_num_queries(12):  # whether each needs one: in the list's query
        listed = staff_client.get(changelist, {"needs_retrain": "yes"})
    current = staff_client.get(changelist, {"needs_retrain": "no"})
    page = staff_client.get(reverse("admin:trainer_trainingrun_change", args=[run.pk]))

    assert {r.name for r in listed.context["cl"].result_list} == {"v1"} | {
        f"flagged {n}" for n in range(4)
    }
    assert {r.name for r in current.context["cl"].result_list} == {f"current {n}" for n in range(4)}
    html = page.content.decode()  # read-only, and escaped: a speaker's name came from a chat
    assert '<div class="readonly"><p>Bo &lt;b&gt; opted out after this run was trained' in html
    assert "(opted out · Bo &lt;b&gt; · " in html
    assert "<p>family.zip was deleted after this run was trained on it. " in html
