# ruff: noqa: F811 (the trainer fixtures imported below are used as arguments)
"""The corpus changes under a run: a friend opts out while the worker reads it, staff exclude,
merge or move people after it trained. The run is flagged, and its leak guard still knows what
it learnt."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import consent
from ingest.models import Conversation, Identity, Message, Speaker
from joe_site.jobs import JobStatus
from tests.test_trainer_runs import (  # noqa: F401 (fixtures)
    T0,
    flagged,
    make_corpus,
    models_dir,
    reasons,
    tiny_base,
    tiny_run,
)
from trainer import corpus, services
from trainer.models import RetrainReason, TrainingRun

pytestmark = pytest.mark.django_db


def test_a_friend_who_opts_out_while_the_worker_reads_the_corpus_flags_the_run(
    models_dir, monkeypatch
):
    """Their messages were already read into the data; the opt-out flagged nothing because the
    run recorded whom it trained on only once the whole corpus was read."""
    speakers = make_corpus()
    read = corpus.corpus_messages

    def friend_opts_out_midway(*args, **kwargs):
        for n, message in enumerate(read(*args, **kwargs)):
            if n == 10:
                consent.set_opted_out(speaker=speakers["Alice"], opted_out=True)
            yield message

    monkeypatch.setattr(services, "corpus_messages", friend_opts_out_midway)
    run = services.execute_run(tiny_run(max_steps=2).pk)

    assert run.status == JobStatus.SUCCEEDED, run.error
    assert "alice" in run.dataset_summary["speakers"]  # read before the opt-out
    assert reasons(run) == ["Alice opted out after this run was trained on their messages."]
    assert Speaker.objects.get(pk=speakers["Alice"].pk).opted_out


SECRET = "my sister is visiting from Lisbon this weekend so no pho"


def test_the_leak_index_knows_a_speaker_merged_into_someone_the_run_never_saw(tmp_path):
    """The index (built as training ends, again when the threshold is lowered) looked up the
    run's speaker ids; staff who merged Alice into a speaker from a later import moved her
    messages away from those ids, and the guard passed verbatim copies of them."""
    from generations.leak_guard import tokenize
    from generations.services import build_leak_index

    alice, later = Speaker.create_named("Alice"), Speaker.create_named("Alice (phone)")
    identity = Identity.objects.create(
        source_kind="slack", external_id="U1", display_name="Alice", speaker=alice
    )
    Message.objects.create(
        conversation=Conversation.objects.create(source_kind="slack", external_id="C1"),
        identity=identity,
        source_kind="slack",
        external_id="m1",
        sent_at=T0,
        text=SECRET,
    )
    run = TrainingRun.objects.create(
        name="before", status=JobStatus.SUCCEEDED, speaker_ids=[alice.pk], checkpoint_dir=tmp_path
    )
    consent.merge_speakers(speaker=alice, target=later)

    assert build_leak_index(run).longest_shared_run(SECRET) == len(tokenize(SECRET))


HTMX = {"HX-Request": "true"}


def flagged_on_runs_page(client) -> list[str]:
    """Why each run needs a retrain, as the runs page says it (in words, not in a tooltip)."""
    page = client.get(reverse("trainer:runs")).content.decode()
    return re.findall(r'data-testid="needs-retrain-why">([^<]*)<', page)


def toast(response) -> str:
    return json.loads(response["HX-Trigger"])["toast"]["message"]


def test_merging_someone_into_a_friend_who_had_opted_out_flags_the_runs_that_learnt_them(
    staff_client,
):
    """Ann's phone speaker had opted out; staff merged her Slack speaker (which a run had learnt)
    into it. Only a merge of an opted-out speaker into one that had not flagged runs, so the run
    that learnt her Slack messages went on looking current."""
    ann = Speaker.create_named("Ann")
    phone = Speaker.create_named("Ann (phone)")
    Speaker.objects.filter(pk=phone.pk).update(opted_out=True)
    run = TrainingRun.objects.create(
        name="slack only", status=JobStatus.SUCCEEDED, speaker_ids=[ann.pk]
    )

    response = staff_client.post(
        reverse("ingest:speaker_merge", args=[ann.pk]), {"speaker": phone.pk}, headers=HTMX
    )

    assert reasons(run) == [
        "Ann was merged into Ann (phone), who opted out, after this run was trained on "
        "their messages."
    ]
    assert "marked “needs retrain” (1)" in toast(response)


def test_excluding_an_identity_flags_the_runs_that_learnt_from_it(staff_client):
    """ "Never train on this identity": the next run leaves it out, but the runs that had already
    learnt it (the active model among them) said nothing on the runs page."""
    bo = Speaker.create_named("Bo")
    guest = Identity.objects.create(
        source_kind="slack", external_id="U9", display_name="Guest", speaker=bo
    )
    run = TrainingRun.objects.create(name="before", status=JobStatus.SUCCEEDED, speaker_ids=[bo.pk])
    earlier = flagged(
        TrainingRun.objects.create(name="flagged", status=JobStatus.SUCCEEDED, speaker_ids=[bo.pk]),
        "Bo opted out.",
    )

    response = staff_client.post(
        reverse("ingest:identity_exclude", args=[guest.pk]), {"excluded": "on"}, headers=HTMX
    )

    excluded = "Guest (Slack export) was excluded from training after this run learnt from it."
    assert reasons(run) == [excluded]
    assert reasons(earlier) == ["Bo opted out.", excluded]  # the earlier reason stays
    assert "Guest (Slack export) is excluded from training." in toast(response)
    assert "marked “needs retrain” (2)" in toast(response)


def test_a_run_flagged_while_it_trains_is_announced_once_not_at_every_refresh(staff_client):
    """The "needs a retrain" box was a role="alert" inside the panel htmx swaps every two
    seconds: a screen reader read it out again at each swap for as long as the run trained."""
    run = flagged(
        TrainingRun.objects.create(
            name="training", status=JobStatus.RUNNING, heartbeat_at=timezone.now()
        ),
        "Ann opted out after this run was trained on their messages.",
    )

    panel = staff_client.get(run.get_absolute_url(), headers=HTMX).content.decode()

    assert 'hx-trigger="every 2s"' in panel  # it is polled
    assert "Ann opted out after this run was trained on their messages." in panel
    assert 'role="alert"' not in panel
    assert 'data-status-announce="training: running, needs a retrain"' in panel


def test_the_runs_page_says_why_a_run_needs_a_retrain_in_words(staff_client):
    """The reason was only the badge's title: a tooltip no phone, keyboard or most screen
    readers ever show, so the list said a run was out of date but not why."""
    flagged(
        TrainingRun.objects.create(name="v1", status=JobStatus.SUCCEEDED),
        "Ann opted out after this run was trained on their messages.",
    )

    assert flagged_on_runs_page(staff_client) == [
        "Ann opted out after this run was trained on their messages."
    ]


def test_a_run_staff_make_active_is_not_replaced_by_a_retrain_started_before(
    staff_client, models_dir
):
    """Staff retrained the active model after an opt-out, then made another finished run active
    while the retrain trained: when the retrain ended it silently took that run's place."""
    make_corpus()
    retrain = tiny_run(max_steps=2)
    TrainingRun.objects.filter(pk=retrain.pk).update(activate_on_success=True)
    chosen = TrainingRun.objects.create(
        name="v2", status=JobStatus.SUCCEEDED, checkpoint_dir="/models/runs/v2"
    )
    said = []

    def staff_choose_v2_meanwhile(progress) -> None:
        if not said:
            page = staff_client.get(retrain.get_absolute_url()).content.decode()
            assert "It becomes the active model when it finishes." in page
            url = reverse("trainer:make_active", args=[chosen.pk])
            said.append(toast(staff_client.post(url, headers=HTMX)))

    retrain = services.execute_run(retrain.pk, on_progress=staff_choose_v2_meanwhile)

    assert retrain.status == JobStatus.SUCCEEDED and not retrain.is_active
    assert TrainingRun.active() == chosen
    assert said == [
        "“v2” is now the active model: new generations use it. “tiny”, still training, will "
        "not take its place when done."
    ]


def test_the_data_table_lists_who_said_most_first():
    """The table came in the order PostgreSQL keeps a JSON object's keys (shortest slug first):
    in a big group, an order that looked random."""
    speakers = {"alexandra": 300, "bo": 2, "cy": 40}
    summary = {"speakers": {s: {"messages": n, "tokens": 9 * n} for s, n in speakers.items()}}
    run = TrainingRun.objects.create(name="v1", dataset_summary=summary)
    run.refresh_from_db()

    assert [row["slug"] for row in run.speaker_rows()] == ["alexandra", "cy", "bo"]


def test_deleting_an_export_flags_the_runs_that_learnt_from_it(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    """An export uploaded by mistake (someone's family chat) was deleted, but the active model
    trained on it kept looking current: nothing told staff it still holds those messages."""
    from ingest import services as ingest
    from tests.test_ingest_support import import_path, slack_export, use_tmp_upload_dir

    use_tmp_upload_dir(settings, tmp_path)
    before = TrainingRun.objects.create(name="before", status=JobStatus.SUCCEEDED)
    export = import_path(slack_export(tmp_path / "family.zip", {"general": [("U1", "hi mum")]}))
    alice = Speaker.objects.get(identities__messages__export=export)
    trained = Speaker.create_named("Alice (phone)")
    consent.merge_speakers(speaker=alice, target=trained)  # the run knows her by the new id
    after = TrainingRun.objects.create(
        name="after", status=JobStatus.SUCCEEDED, speaker_ids=[trained.pk],
        started_at=timezone.now(),
    )  # fmt: skip
    TrainingRun.objects.filter(pk=before.pk).update(
        speaker_ids=[trained.pk], started_at=export.finished_at - timedelta(minutes=1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        ingest.delete_export(export_id=export.pk)

    assert reasons(after) == ["family.zip was deleted after this run was trained on it."]
    assert reasons(before) == []  # it trained before the export was imported


@pytest.mark.django_db(transaction=True)  # on_commit runs at once, as on the worker
def test_a_broker_that_does_not_answer_as_the_run_ends_does_not_fail_the_run(
    models_dir, monkeypatch
):
    """Queueing the quality report is the run's very last step: Redis restarting at that moment
    turned a finished run (its checkpoint saved, perhaps already the active model) into a failed
    one, which could no longer be made active."""
    from kombu.exceptions import OperationalError

    from joe_site.celery import app

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    make_corpus()
    monkeypatch.setattr(app, "send_task", broker_down)
    run = tiny_run(max_steps=2)
    TrainingRun.objects.filter(pk=run.pk).update(activate_on_success=True)

    run = services.execute_run(run.pk)

    assert run.status == JobStatus.SUCCEEDED and run.is_active and not run.error
    assert run.report == {"error": services.REPORT_NOT_QUEUED}
    assert not run.awaiting_report  # the page does not wait a quarter of an hour for it


def test_merging_two_speakers_flags_the_runs_that_learnt_the_one_merged_away(staff_client):
    """The model knows Ann by a slug no speaker holds after the merge, so it no longer writes as
    her anywhere; the runs page said nothing."""
    ann, phone = Speaker.create_named("Ann"), Speaker.create_named("Ann (phone)")
    learnt_ann = TrainingRun.objects.create(
        name="v1", status=JobStatus.SUCCEEDED, speaker_ids=[ann.pk, phone.pk]
    )
    phone_only = TrainingRun.objects.create(
        name="v0", status=JobStatus.SUCCEEDED, speaker_ids=[phone.pk]
    )

    response = staff_client.post(
        reverse("ingest:speaker_merge", args=[ann.pk]), {"speaker": phone.pk}, headers=HTMX
    )

    assert reasons(learnt_ann) == [
        "Ann was merged into Ann (phone) after this run was trained: it knows them as two "
        "voices, and no longer writes as Ann."
    ]
    assert reasons(phone_only) == []
    assert "Training runs that learnt Ann (phone)'s voice are marked “needs retrain” (1)." in (
        toast(response)
    )


def test_splitting_or_moving_an_identity_flags_the_runs_that_learnt_it_in_the_old_voice(
    staff_client,
):
    """Staff found that a "Bo" on Slack was Bo's brother and split him off, then moved Bo's
    phone identity to Ann: the runs that learnt them all as Bo still looked current."""
    bo, ann = Speaker.create_named("Bo"), Speaker.create_named("Ann")
    brother, phone, bot = (
        Identity.objects.create(
            source_kind="slack", external_id=uid, display_name=name, speaker=bo, is_bot=is_bot
        )
        for uid, name, is_bot in (("U1", "Bo B", False), ("U2", "Bo P", False), ("B1", "CI", True))
    )
    run = TrainingRun.objects.create(name="v1", status=JobStatus.SUCCEEDED, speaker_ids=[bo.pk])

    def flags_after(action: str, identity: Identity, data: dict) -> tuple[list[str], str]:
        RetrainReason.objects.filter(run=run).delete()
        url = reverse(f"ingest:identity_{action}", args=[identity.pk])
        response = staff_client.post(url, data, headers=HTMX)
        return reasons(run), toast(response)

    said_why, said = flags_after("split", brother, {})
    assert said_why == ["Bo B (Slack export) was split off Bo after this run was trained on both."]
    assert "Training runs that learnt Bo's voice are marked “needs retrain” (1)." in said
    said_why, said = flags_after("assign", phone, {"speaker": ann.pk})
    assert said_why == ["Bo P (Slack export) moved from Bo to Ann after this run was trained."]
    assert flags_after("split", bot, {})[0] == []  # bots never train


def test_a_retrain_of_a_retrain_still_training_takes_over_in_its_place(staff_client, monkeypatch):
    """The retrain of the active model was flagged in turn (another friend opted out while it
    trained) and staff retrained it: the new run would never become the active model, since
    only a retrain of the active run did, so the flagged one took over and stayed."""
    from trainer.tasks import train_run

    monkeypatch.setattr(train_run, "delay", lambda run_id: type("Sent", (), {"id": "t"}))
    run = flagged(
        TrainingRun.objects.create(
            name="v1 (retrain)",
            base_model="tiny",
            status=JobStatus.RUNNING,
            heartbeat_at=timezone.now(),
            activate_on_success=True,
            hyperparameters=services.resolved_hyperparameters({}),
        ),  # fmt: skip
        "Bo opted out after this run was trained on their messages.",
    )

    staff_client.post(reverse("trainer:retrain", args=[run.pk]))

    retrain = TrainingRun.objects.exclude(pk=run.pk).get()
    assert retrain.activate_on_success


def test_a_friend_who_opts_back_in_takes_back_the_flag_their_opt_out_put_on_runs():
    """Ann opted out, then back in: the runs that learnt her kept saying "Ann opted out" in red
    on the runs page, for a friend who is in again."""
    ann, bo = Speaker.create_named("Ann"), Speaker.create_named("Bo")
    learnt_ann = TrainingRun.objects.create(
        name="v1", status=JobStatus.SUCCEEDED, speaker_ids=[ann.pk, bo.pk]
    )
    consent.set_opted_out(speaker=ann, opted_out=True)
    assert reasons(learnt_ann) == ["Ann opted out after this run was trained on their messages."]
    also_bo = flagged(
        TrainingRun.objects.create(name="v0", status=JobStatus.SUCCEEDED, speaker_ids=[bo.pk]),
        "Bo opted out.",
    )

    consent.set_opted_out(speaker=ann, opted_out=False)

    assert (reasons(learnt_ann), reasons(also_bo)) == ([], ["Bo opted out."])


def test_a_run_that_cannot_resume_on_changed_data_names_every_kind_of_change():
    """Staff who merged two speakers or excluded a bot must recognise what they did."""
    error = ValueError("the checkpoint was trained on different data; use a new out_dir")

    message = services._explain(error, model=None)

    for change in ("imported", "deleted", "merged", "excluded", "opting out"):
        assert change in message
    assert "start a new run" in message


def flagged_run(status: str = JobStatus.SUCCEEDED) -> TrainingRun:
    return flagged(
        TrainingRun.objects.create(
            name="v1",
            base_model="tiny",
            status=status,
            heartbeat_at=timezone.now(),
            hyperparameters=services.resolved_hyperparameters({}),
        ),  # fmt: skip
        "Bo opted out after this run was trained on their messages.",
    )


@pytest.fixture
def no_broker(monkeypatch):
    from trainer.tasks import train_run

    monkeypatch.setattr(train_run, "delay", lambda run_id: type("Sent", (), {"id": "t"}))


def test_a_retrained_run_links_to_its_retrain_instead_of_offering_another(staff_client, no_broker):
    """The flagged run kept its Retrain button after its retrain succeeded, with no word of it:
    a second click started a second retrain."""
    flagged = flagged_run()
    staff_client.post(reverse("trainer:retrain", args=[flagged.pk]))
    retrain = TrainingRun.objects.get(retrain_of=flagged)

    def page() -> str:
        return staff_client.get(flagged.get_absolute_url()).content.decode()

    assert f'Retrained as <a href="{retrain.get_absolute_url()}">run #{retrain.pk}' in page()
    assert 'id="run-retrain"' not in page()
    TrainingRun.objects.filter(pk=retrain.pk).update(
        status=JobStatus.SUCCEEDED, created_at=timezone.now() - timedelta(minutes=5)
    )
    assert "(succeeded)" in page() and 'id="run-retrain"' not in page()

    # A page left open from before: its button does not start a second one.
    response = staff_client.post(reverse("trainer:retrain", args=[flagged.pk]))
    assert response.url == retrain.get_absolute_url()
    assert TrainingRun.objects.filter(retrain_of=flagged).count() == 1

    TrainingRun.objects.filter(pk=retrain.pk).update(status=JobStatus.FAILED)
    assert 'id="run-retrain"' in page()  # that one failed: retraining is offered again


def test_retraining_a_run_still_training_says_the_new_one_waits_behind_it(staff_client, no_broker):
    flagged = flagged_run(JobStatus.RUNNING)
    assert (
        "trains one run at a time" in staff_client.get(flagged.get_absolute_url()).content.decode()
    )

    response = staff_client.post(reverse("trainer:retrain", args=[flagged.pk]), follow=True)

    said = [str(m) for m in response.context["messages"]]
    assert said == [
        "Retraining with the same settings as “v1”. It waits in the queue until “v1” has "
        "finished: the GPU worker trains one run at a time."
    ]


def test_the_runs_list_links_each_flagged_run_to_its_retrain(
    staff_client, no_broker, django_assert_max_num_queries
):
    flagged = [flagged_run() for _ in range(3)]
    retrains = [services.retrain(run) for run in flagged[:2]]
    TrainingRun.objects.filter(pk=retrains[1].pk).update(status=JobStatus.CANCELLED)

    with django_assert_max_num_queries(9):  # one for all the retrains, not one per run
        page = staff_client.get("/trainer/").content.decode()

    assert f'Retrained as <a href="{retrains[0].get_absolute_url()}">run #{retrains[0].pk}' in page
    assert page.count('data-testid="retrained-as"') == 1  # the cancelled one is no retrain


def test_a_run_started_while_another_trains_says_it_waits_for_it(staff_client, no_broker):
    from tests.test_trainer_runs import FORM

    flagged_run(JobStatus.RUNNING)

    response = staff_client.post("/trainer/", FORM, follow=True)

    said = [str(m) for m in response.context["messages"]]
    assert said == [
        "“first try” is queued. It waits in the queue until “v1” has finished: the GPU worker "
        "trains one run at a time."
    ]


def test_a_run_whose_worker_went_silent_is_not_named_as_the_one_ahead(staff_client, no_broker):
    from tests.test_trainer_runs import FORM

    lost = flagged_run(JobStatus.RUNNING)
    TrainingRun.objects.filter(pk=lost.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    response = staff_client.post("/trainer/", FORM, follow=True)

    said = [str(m) for m in response.context["messages"]]
    assert said == ["“first try” is queued. A GPU worker will pick it up."]


def test_opting_back_in_keeps_the_flag_of_a_friend_still_out_or_whose_messages_are_gone():
    """Ann opted out, then Bo (whose flag replaced hers on the run), then Bo came back in: the
    run looked current though Ann is still out. Cy deleted her messages and later opted out and
    back in: her run looked current, trained on messages she had deleted."""
    ann, bo, cy = (Speaker.create_named(name) for name in ("Ann", "Bo", "Cy"))
    both = TrainingRun.objects.create(
        name="v1", status=JobStatus.SUCCEEDED, speaker_ids=[ann.pk, bo.pk]
    )
    learnt_cy = TrainingRun.objects.create(
        name="v2", status=JobStatus.SUCCEEDED, speaker_ids=[cy.pk]
    )
    consent.set_opted_out(speaker=ann, opted_out=True)
    consent.set_opted_out(speaker=bo, opted_out=True)
    consent.delete_messages(speaker=cy)
    cy.refresh_from_db()
    consent.set_opted_out(speaker=cy, opted_out=True)

    consent.set_opted_out(speaker=bo, opted_out=False)
    consent.set_opted_out(speaker=cy, opted_out=False)

    assert reasons(both) == ["Ann opted out after this run was trained on their messages."]
    assert reasons(learnt_cy) == ["Cy deleted their messages after this run was trained on them."]


def test_opting_back_in_after_a_merge_takes_back_the_flag_the_merge_gave_their_runs():
    """Sam (opted out) was merged into Samuel, whose runs were flagged "Samuel opted out (as
    Sam, merged into them)"; Samuel opted back in and they stayed red for good. The run that
    learnt Sam still needs its retrain: it writes in a voice nobody holds now."""
    sam, samuel = Speaker.create_named("Sam"), Speaker.create_named("Samuel")
    consent.set_opted_out(speaker=sam, opted_out=True)
    learnt_samuel, learnt_sam = (
        TrainingRun.objects.create(name=n, status=JobStatus.SUCCEEDED, speaker_ids=[s.pk])
        for n, s in (("v1", samuel), ("v2", sam))
    )
    consent.merge_speakers(speaker=sam, target=samuel)
    samuel.refresh_from_db()
    assert reasons(learnt_samuel) == [
        "Samuel opted out (as Sam, merged into them) after this run was trained on their messages."
    ]

    consent.set_opted_out(speaker=samuel, opted_out=False)

    assert reasons(learnt_samuel) == []
    assert reasons(learnt_sam) == [
        "Sam was merged into Samuel after this run was trained: it knows them as two voices, "
        "and no longer writes as Sam."
    ]
