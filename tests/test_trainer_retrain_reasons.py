"""A run keeps each reason it needs a retrain for: a friend who opts back in takes back their
own, under whatever name, and leaves the others; the pages say every one."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import consent
from ingest.models import Export, Identity, Speaker, export_deleted
from joe_site.jobs import JobStatus
from tests.test_trainer_runs import flagged, reasons
from trainer.models import TrainingRun

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
BO_OPTED_OUT = "Bo opted out after this run was trained on their messages."


def run_that_learnt(*speakers: Speaker, name: str = "v1") -> TrainingRun:
    return TrainingRun.objects.create(
        name=name, status=JobStatus.SUCCEEDED, speaker_ids=[s.pk for s in speakers]
    )


def said_on_run_page(client, run: TrainingRun) -> list[str]:
    page = client.get(run.get_absolute_url()).content.decode()
    return re.findall(r'data-testid="needs-retrain-reason">([^<]*)<', page)


def test_a_friend_who_opts_back_in_leaves_the_reasons_that_still_hold(staff_client):
    """Staff split Bo's brother off Bo, and Bo's family chat was deleted; then Bo opted out,
    which replaced the one reason the run could hold, and back in, which cleared it: the run
    looked current, though it still wrote the brother as Bo and still knew the chat."""
    bo = Speaker.create_named("Bo")
    brother, _ = (
        Identity.objects.create(source_kind="slack", external_id=uid, display_name=name, speaker=bo)
        for uid, name in (("U1", "Bo B"), ("U2", "Bo"))
    )
    run = run_that_learnt(bo)
    staff_client.post(reverse("ingest:identity_split", args=[brother.pk]), headers=HTMX)
    export_deleted.send(Export, name="family.zip", speaker_ids={bo.pk}, imported_at=None)
    split = "Bo B (Slack export) was split off Bo after this run was trained on both."
    chat = "family.zip was deleted after this run was trained on it."

    consent.set_opted_out(speaker=bo, opted_out=True)
    assert said_on_run_page(staff_client, run) == [split, chat, BO_OPTED_OUT]
    consent.set_opted_out(speaker=bo, opted_out=False)

    assert reasons(run) == [split, chat]
    assert said_on_run_page(staff_client, run) == [split, chat]


def test_a_friend_renamed_while_opted_out_takes_their_flag_back_when_they_opt_in(
    staff_client, member_client, member
):
    """Bo opted out, staff renamed him "Bobby" on the Speakers page, Bobby opted back in: his
    flag was found by the name it began with, so the run said "Bo opted out" for good."""
    bo = Speaker.create_named("Bo")
    Speaker.objects.filter(pk=bo.pk).update(member=member)
    run = run_that_learnt(bo)
    opt_out = f"/accounts/me/speakers/{bo.pk}/opt-out/"
    member_client.post(opt_out, {"opted_out": "1"})
    staff_client.post(
        reverse("ingest:speaker_rename", args=[bo.pk]), {"display_name": "Bobby"}, headers=HTMX
    )
    assert Speaker.objects.get(pk=bo.pk).display_name == "Bobby"
    assert reasons(run) == [BO_OPTED_OUT]  # said as it was said then

    member_client.post(opt_out, {"opted_out": "0"})

    assert reasons(run) == []
    assert not TrainingRun.objects.get(pk=run.pk).needs_retrain


def test_opting_back_in_takes_back_the_opt_out_given_under_a_speaker_merged_into_them():
    """Sam and Samuel had both opted out; staff merged Sam into Samuel, who opted back in: the
    run kept saying "Sam opted out", a flag no opt-in could take back any more. It still needs
    its retrain: it writes in Sam's voice, which nobody holds now."""
    sam, samuel = Speaker.create_named("Sam"), Speaker.create_named("Samuel")
    run = run_that_learnt(sam)
    consent.set_opted_out(speaker=sam, opted_out=True)
    consent.set_opted_out(speaker=samuel, opted_out=True)
    consent.merge_speakers(speaker=sam, target=samuel)
    samuel.refresh_from_db()

    consent.set_opted_out(speaker=samuel, opted_out=False)

    assert reasons(run) == [
        "Sam was merged into Samuel after this run was trained: it knows them as two voices, "
        "and no longer writes as Sam."
    ]


def test_the_runs_list_says_the_first_reason_and_how_many_more_in_the_same_queries(
    staff_client,
):
    """Two reasons at once: the list could say only one, and no page said the other."""
    first = flagged(TrainingRun.objects.create(name="one"), "Bo opted out.")

    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            staff_client.get(reverse("trainer:runs"))
        return len(context.captured_queries)

    one_run = queries()
    for n in range(5):
        flagged(TrainingRun.objects.create(name=f"v{n}"), "Ann opted out.", "family.zip went.")
    page = staff_client.get(reverse("trainer:runs")).content.decode()

    assert queries() == one_run  # not one per run, nor per reason
    assert re.findall(r'data-testid="needs-retrain-why">([^<]*)<', page) == [
        *["Ann opted out."] * 5,
        "Bo opted out.",
    ]
    more = '<a href="{}">+1 more<span class="sr-only"> reason why {} needs a retrain</span></a>'
    assert more.format(TrainingRun.objects.get(name="v0").get_absolute_url(), "v0") in page
    assert more.format(first.get_absolute_url(), "one") not in page


@pytest.mark.django_db(transaction=True)
def test_the_old_reason_texts_become_one_row_each_and_what_they_hid_rows_of_their_own():
    """The migration to rows: a run's text is kept as it was written; an opt-out's text is
    that friend's (their opt-in takes it back); and the friends still out, or a voice merged
    away, whom the one field had no room for, are reasons of their own."""
    executor = MigrationExecutor(connection)
    before, after = [("trainer", "0004_run_retrain_of")], [("trainer", "0005_retrain_reasons")]
    executor.migrate(before)
    try:
        OldRun = executor.loader.project_state(before).apps.get_model("trainer", "TrainingRun")
        ann, bo, cy = (
            Speaker.objects.create(display_name=name, slug=name.lower(), opted_out=True)
            for name in ("Ann", "Bo", "Cy")
        )
        samuel = Speaker.objects.create(display_name="Samuel", slug="samuel", former_ids=[99])
        both = OldRun.objects.create(
            name="both", speaker_ids=[ann.pk, bo.pk], needs_retrain=BO_OPTED_OUT
        )
        chat = OldRun.objects.create(
            name="chat", speaker_ids=[samuel.pk, 99], needs_retrain="family.zip was deleted."
        )
        merged = OldRun.objects.create(
            name="merged",
            speaker_ids=[cy.pk, 99],
            needs_retrain="Cy opted out after this run was trained on their messages.",
        )
        current = OldRun.objects.create(name="current", speaker_ids=[cy.pk])

        executor = MigrationExecutor(connection)  # the plan is read again
        executor.migrate(after)
        executor.loader.build_graph()

        assert reasons(both) == [
            BO_OPTED_OUT,
            "Ann opted out after this run was trained on their messages.",
        ]
        assert reasons(chat) == ["family.zip was deleted."]  # it may say the merge: no more
        assert reasons(merged) == [
            "Cy opted out after this run was trained on their messages.",
            "A voice it learnt was merged into another speaker since: no speaker holds it now, "
            "so it no longer writes in it.",
        ]
        assert reasons(current) == []
        consent.set_opted_out(speaker=bo, opted_out=False)
        assert reasons(both) == ["Ann opted out after this run was trained on their messages."]
    finally:
        MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())


def test_chats_deleted_in_the_admin_are_said_apart_from_an_export(
    staff_client, tmp_path, settings, django_capture_on_commit_callbacks
):
    """Deleting two chats in the admin said '2 chats was deleted', naming neither, under the
    kind an export's deletion has ('export or chat deleted'): which was it?"""
    from ingest import services
    from ingest.models import Conversation
    from tests.test_ingest_support import import_path, slack_export, use_tmp_upload_dir
    from trainer.models import RetrainReason

    use_tmp_upload_dir(settings, tmp_path)
    chats = {"family": [("U1", "hi")], "secret <b>": [("U1", "shh")], "work": [("U1", "ok")]}
    export = import_path(slack_export(tmp_path / "team.zip", chats))
    run = TrainingRun.objects.create(
        name="v1",
        status=JobStatus.SUCCEEDED,
        speaker_ids=list(Speaker.objects.values_list("pk", flat=True)),
        started_at=export.finished_at,
    )
    two = Conversation.objects.exclude(title="#work").order_by("title")

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            reverse("admin:ingest_conversation_changelist"),
            {"action": "delete_selected", "_selected_action": [c.pk for c in two], "post": "yes"},
        )
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_export(export_id=export.pk)

    chats_gone = (
        "The chats “#family” and “#secret <b>” were deleted after this run was trained on them."
    )
    export_gone = "team.zip was deleted after this run was trained on it."
    assert list(RetrainReason.objects.filter(run=run).values_list("kind", "text")) == [
        (RetrainReason.Kind.CHAT_DELETED, chats_gone),
        (RetrainReason.Kind.EXPORT_DELETED, export_gone),
    ]
    assert said_on_run_page(staff_client, run) == [
        "The chats “#family” and “#secret &lt;b&gt;” were deleted after this run was trained on "
        "them.",
        export_gone,
    ]
    admin_page = staff_client.get(reverse("admin:trainer_trainingrun_change", args=[run.pk]))
    assert "(chat deleted · " in admin_page.content.decode()
    assert "(export deleted · " in admin_page.content.decode()


def test_many_chats_deleted_are_named_as_far_as_a_reason_holds():
    from trainer.models import chats_deleted_text

    assert chats_deleted_text(["a"]) == "The chat “a” was deleted after this run was trained on it."
    text = chats_deleted_text([f"chat number {n}" for n in range(40)])
    assert len(text) <= 300
    assert text.startswith("The chats “chat number 0”, “chat number 1”, ")
    assert text.endswith(" more were deleted after this run was trained on them.")


@pytest.mark.django_db(transaction=True)
def test_the_chats_deleted_before_get_their_own_kind():
    """The migration: reasons a chat's deletion gave under the export's kind become the chat's;
    an export's stay."""
    from trainer.models import RetrainReason

    executor = MigrationExecutor(connection)
    before = [("trainer", "0005_retrain_reasons")]
    after = [("trainer", "0006_retrain_reason_chat_deleted")]
    executor.migrate(before)
    try:
        apps = executor.loader.project_state(before).apps
        OldRun = apps.get_model("trainer", "TrainingRun")
        OldReason = apps.get_model("trainer", "RetrainReason")
        run = OldRun.objects.create(name="v1", speaker_ids=[1])
        for text in (
            "The chat “family” was deleted after this run was trained on it.",
            "3 chats was deleted after this run was trained on it.",
            "team.zip was deleted after this run was trained on it.",
        ):
            OldReason.objects.create(run=run, kind="export_deleted", text=text)

        executor = MigrationExecutor(connection)  # the plan is read again
        executor.migrate(after)
        executor.loader.build_graph()

        assert list(
            RetrainReason.objects.filter(run_id=run.pk)
            .order_by("pk")
            .values_list("kind", flat=True)
        ) == ["chat_deleted", "chat_deleted", "export_deleted"]
    finally:
        MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
