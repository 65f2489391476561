"""Staff generate batches of snippets: quotas, stored seeds, filters, leaks, cancel, the pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from accounts import consent
from generations import services
from generations.models import GenerationBatch, Snippet, SnippetStatus
from generations.services import GenerationError, create_batch, execute_batch, regenerate
from ingest.models import Speaker
from joe_site.jobs import JobStatus
from tests.builders.generation import (
    CORPUS,
    FakeGenerator,
    make_run,
)
from trainer.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(monkeypatch):
    generator = FakeGenerator()
    monkeypatch.setattr(services, "load_generator", lambda checkpoint_dir: generator)
    return generator


def new_batch(run, **overrides) -> GenerationBatch:
    settings = {
        "run": run, "per_speaker": {"ann": 2, "bo": 1}, "conversations": 0, "temperature": 0.9,
        "top_p": 0.95, "top_k": 50, "max_new_tokens": 8, "prompt": "", "base_seed": 1234,
    }  # fmt: skip
    return create_batch(**(settings | overrides))


def test_batch_stores_each_snippet_with_its_params_and_own_seed(run):
    batch = execute_batch(new_batch(run, conversations=1, temperature=1.1, top_k=20).pk)

    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED
    assert batch.progress_done == batch.progress_total == 4
    assert batch.stats["kept"] == 4
    snippets = list(batch.snippets.all())
    assert sorted(s.speaker.slug for s in snippets if s.kind == "message") == ["ann", "ann", "bo"]
    assert len({s.seed for s in snippets}) == 4
    for snippet in snippets:
        assert (snippet.temperature, snippet.top_p, snippet.top_k, snippet.max_new_tokens) == (
            1.1, 0.95, 20, 8,
        )  # fmt: skip
        assert snippet.run == run and snippet.source == "batch"
        assert snippet.status == SnippetStatus.PUBLISHED and snippet.text
    conversation = next(s for s in snippets if s.kind == "conversation")
    voices = {line["speaker"] for line in conversation.lines}
    assert set(conversation.speakers.values_list("slug", flat=True)) == voices


@pytest.mark.slow
def test_regenerating_a_snippet_gives_the_same_text(run):
    batch = execute_batch(new_batch(run, per_speaker={"ann": 3, "cy": 2}, conversations=1).pk)

    for snippet in batch.snippets.all():
        assert regenerate(snippet) == snippet.text


def test_the_prompt_starts_every_message(run):
    batch = execute_batch(new_batch(run, prompt="pho tonight").pk)

    assert all(s.text.startswith("pho tonight") for s in batch.snippets.all())
    assert all(s.prompt == "pho tonight" for s in batch.snippets.all())


def test_leak_guard_hides_a_verbatim_copy_and_passes_novel_text(run, fake):
    copied = CORPUS["ann"][0]
    fake.messages = [copied, "a sentence nobody in the group ever wrote down", "brand new words"]

    batch = execute_batch(new_batch(run).pk)

    leak = Snippet.objects.get(text=copied)
    assert leak.is_leak and leak.status == SnippetStatus.HIDDEN
    assert leak.hidden_reason == "verbatim leak"
    assert leak.longest_shared_run >= 8
    assert not leak.is_visible
    novel = Snippet.objects.get(text="a sentence nobody in the group ever wrote down")
    assert not novel.is_leak and novel.is_visible
    assert novel.longest_shared_run < 8
    assert batch.stats["leak"] == 1
    # The leak did not count towards Ann's quota: she still got two snippets members can see.
    assert Snippet.objects.visible().filter(speaker__slug="ann").count() == 2
    assert (run.checkpoint_dir + "/leak_index.npz") and services.leak_index_path(run).is_file()


def test_a_message_deleted_after_training_still_counts_as_a_leak(run, friends, fake, monkeypatch):
    """The weights keep what the run learnt: a friend's "delete my messages" between the end of
    training and the first batch must not take their messages out of the guard's reach."""
    from accounts.consent import delete_messages
    from generations import report

    monkeypatch.setattr(report, "compute_report", lambda run, **kwargs: {})
    report.refresh_run_report(run.pk)  # what the trainer queues as the run ends
    delete_messages(speaker=friends["ann"])
    fake.messages = [CORPUS["ann"][0]]

    batch = execute_batch(new_batch(run, per_speaker={"ann": 1}).pk)

    copy = batch.snippets.get(text=CORPUS["ann"][0])
    assert copy.is_leak and copy.status == SnippetStatus.HIDDEN
    assert not Snippet.objects.visible().filter(pk=copy.pk).exists()


def test_a_leak_built_from_a_copy_inside_a_longer_message_is_caught(run, fake):
    fake.messages = ["ok so " + CORPUS["bo"][1] + " haha"]

    execute_batch(new_batch(run, per_speaker={"bo": 1}).pk)

    assert Snippet.objects.get(text__startswith="ok so").is_leak


def test_near_duplicates_are_dropped_within_the_batch_and_against_the_gallery(run, fake):
    Snippet.objects.create(text="see you at the station at 8, bring the tickets", run=run)
    fake.messages = [
        "lol same!!",
        "LOL same",
        "see you at the station at 8, bring the ticket",
        "something else entirely",
    ]

    batch = execute_batch(new_batch(run, per_speaker={"ann": 2}).pk)

    texts = set(batch.snippets.values_list("text", flat=True))
    assert texts == {"lol same!!", "something else entirely"}
    assert batch.stats["near_duplicate"] == 2


def test_empty_and_one_letter_messages_are_dropped(run, fake):
    fake.messages = ["", "k", "a real message"]

    batch = execute_batch(new_batch(run, per_speaker={"bo": 1}).pk)

    assert list(batch.snippets.values_list("text", flat=True)) == ["a real message"]
    assert batch.stats["too_short"] == 2
    assert batch.stats["generated"] == 3


def test_a_message_that_is_only_the_prompt_is_dropped(run, fake):
    """The prompt is the batch's words, not the model's: nothing added is too short."""
    fake.messages = ["pho tonight", "pho tonight!", "pho tonight at 8 then"]
    fake.conversations = [
        [("ann", "pho tonight"), ("bo", "yes")],
        [("ann", "pho tonight at 7?"), ("bo", "sure")],
    ]

    batch = execute_batch(
        new_batch(run, per_speaker={"bo": 1}, conversations=1, prompt="pho tonight").pk
    )

    texts = sorted(batch.snippets.values_list("text", flat=True))
    assert texts == ["pho tonight at 7?\nsure", "pho tonight at 8 then"]
    assert batch.stats["too_short"] == 3  # two messages, one conversation


def test_a_quota_that_cannot_be_filled_gives_up_with_a_note(run, fake):
    fake.messages = [""] * 100

    batch = execute_batch(new_batch(run, per_speaker={"bo": 2}).pk)

    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED
    assert "gave up" in batch.progress_note
    assert batch.progress_done == batch.progress_total


def test_cancel_stops_between_chunks_and_keeps_what_was_saved(run, fake):
    batch = new_batch(run, per_speaker={"ann": 40, "bo": 40})  # three chunks of 32
    fake.after_chunk = batch.request_cancel

    execute_batch(batch.pk)

    batch.refresh_from_db()
    assert batch.status == JobStatus.CANCELLED
    assert batch.snippets.count() == 32
    assert batch.stats["kept"] == 32


def test_a_friend_who_opts_out_while_a_batch_runs_gets_not_one_more_fake(
    run, friends, fake, monkeypatch
):
    """Opting out promises that nobody generates your voice: a batch already running stops
    writing it, rather than fill the quota with fakes that opting back in would bring out."""
    chunks = []
    answer = fake.generate_messages

    def generate_messages(requests, *args, **kwargs):
        chunks.append({slug for slug, _ in requests})
        consent.set_opted_out(speaker=friends["bo"], opted_out=True)  # while it writes
        return answer(requests, *args, **kwargs)

    monkeypatch.setattr(fake, "generate_messages", generate_messages)

    batch = execute_batch(new_batch(run, per_speaker={"ann": 40, "bo": 40}).pk)  # chunks of 32

    assert all("bo" not in chunk for chunk in chunks[1:])
    assert batch.snippets.filter(speaker=friends["ann"]).count() == 40
    assert batch.snippets.filter(speaker=friends["bo"]).count() < 40
    assert batch.status == JobStatus.SUCCEEDED
    assert batch.progress_note == "Done; stopped writing as bo, who opted out meanwhile"
    assert batch.progress_done == batch.progress_total


def test_a_friend_who_opts_out_during_conversations_is_left_out_of_the_next(
    run, friends, fake, monkeypatch
):
    asked = []
    answer = fake.generate_conversation

    def generate_conversation(params, *, speakers_allowed, **kwargs):
        asked.append(set(speakers_allowed))
        consent.set_opted_out(speaker=friends["bo"], opted_out=True)
        return answer(params, speakers_allowed=speakers_allowed, **kwargs)

    monkeypatch.setattr(fake, "generate_conversation", generate_conversation)
    fake.conversations = [
        [("ann", "so who is coming"), ("bo", "me")],
        [("cy", "not me"), ("ann", "ok")],
    ]

    execute_batch(new_batch(run, per_speaker={}, conversations=2).pk)

    assert asked == [{"ann", "bo", "cy"}, {"ann", "cy"}]


def test_running_a_finished_batch_again_adds_nothing(run, fake):
    batch = execute_batch(new_batch(run).pk)
    count = batch.snippets.count()

    execute_batch(batch.pk)

    assert batch.snippets.count() == count


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs."""


def test_a_restarted_worker_carries_on_with_the_batch_it_was_killed_in(
    run, fake, django_capture_on_commit_callbacks, monkeypatch
):
    from generations import tasks

    batch = new_batch(run, per_speaker={"ann": 40, "bo": 40})  # three chunks of 32

    def killed():
        raise WorkerKilled

    fake.after_chunk = killed
    with pytest.raises(WorkerKilled):
        execute_batch(batch.pk, worker_host="gpu@box")
    batch.refresh_from_db()
    assert (batch.status, batch.worker_host) == (JobStatus.RUNNING, "gpu@box")
    queued = []
    monkeypatch.setattr(tasks.run_batch, "delay", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.requeue_lost_batches(worker_host="gpu@other") == []
        assert services.requeue_lost_batches(worker_host="gpu@box") == [batch.pk]

    batch.refresh_from_db()
    assert queued == [batch.pk]
    assert batch.status == JobStatus.QUEUED
    assert batch.progress_note == "The worker stopped at 0 of 80; waiting to go on"
    fake.after_chunk = None
    execute_batch(batch.pk, worker_host="gpu@box")
    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED
    assert batch.snippets.filter(speaker__slug="ann").count() == 40  # nothing doubled
    assert batch.snippets.filter(speaker__slug="bo").count() == 40


def test_a_restarted_worker_ends_a_batch_staff_cancelled_while_it_was_down(run, monkeypatch):
    from generations import tasks

    batch = new_batch(run)
    batch.mark_running()
    GenerationBatch.objects.filter(pk=batch.pk).update(worker_host="gpu@box")
    batch.request_cancel()
    monkeypatch.setattr(tasks.run_batch, "delay", lambda pk: pytest.fail("queued again"))

    assert services.requeue_lost_batches(worker_host="gpu@box") == []

    batch.refresh_from_db()
    assert batch.status == JobStatus.CANCELLED
    assert batch.progress_note == services.WORKER_STOPPED


def test_conversations_never_include_an_opted_out_friend(run, friends, fake):
    friends["cy"].opted_out = True
    friends["cy"].save()
    fake.conversations = [[("ann", "so"), ("bo", "what")]]

    batch = execute_batch(new_batch(run, per_speaker={}, conversations=1).pk)

    assert batch.snippets.get().kind == "conversation"


def voices_asked_for(fake, monkeypatch) -> list[list[str]]:
    """The voices each conversation the fake model writes may use, as the batch asked."""
    asked = []
    answer = fake.generate_conversation

    def generate_conversation(params, *, speakers_allowed, **kwargs):
        asked.append(sorted(speakers_allowed))
        return answer(params, speakers_allowed=speakers_allowed, **kwargs)

    monkeypatch.setattr(fake, "generate_conversation", generate_conversation)
    return asked


def test_conversations_never_write_as_a_friend_merged_into_one_who_opted_out(
    run, friends, fake, monkeypatch
):
    """Cy was Bo's other account: merged into Bo after the model was trained, then Bo opted out.
    The model still knows the slug "cy"; a line in it was Bo's voice under a bare slug, tied to
    no speaker, so no opt-out or veto of Bo's could hide it."""
    consent.merge_speakers(speaker=friends["cy"], target=friends["bo"])
    consent.set_opted_out(speaker=Speaker.objects.get(slug="bo"), opted_out=True)
    asked = voices_asked_for(fake, monkeypatch)
    fake.conversations = [[("ann", "so who is coming"), ("ann", "anyone at all")]]

    execute_batch(new_batch(run, per_speaker={}, conversations=1).pk)

    assert asked == [["ann"]]


def test_conversations_leave_out_a_voice_merged_into_a_friend_who_opted_out(
    run, friends, fake, monkeypatch
):
    """Cy turned out to be the same friend as a speaker from a later import, who had opted
    out: after the merge no speaker had the slug "cy", so nothing banned it, and the model kept
    writing Cy's lines into conversations members see (with nobody there to veto them)."""
    from accounts import consent
    from ingest.models import Speaker

    phone = Speaker.objects.create(display_name="Cy (phone)", slug="cy-phone", opted_out=True)
    consent.merge_speakers(speaker=friends["cy"], target=phone)
    allowed = voices_asked_for(fake, monkeypatch)
    execute_batch(new_batch(run, per_speaker={}, conversations=1).pk)

    assert allowed == [["ann", "bo"]]


def test_opted_out_speaker_is_refused(run, friends):
    friends["bo"].opted_out = True
    friends["bo"].save()

    with pytest.raises(GenerationError, match="Bo has opted out"):
        new_batch(run)
    assert not GenerationBatch.objects.exists()


def test_curate_before_publish_sends_snippets_to_triage(run, fake, settings):
    settings.JOE_CURATE_BEFORE_PUBLISH = True

    batch = execute_batch(new_batch(run).pk)

    assert set(batch.snippets.values_list("status", flat=True)) == {SnippetStatus.TRIAGE}


def test_a_missing_checkpoint_fails_the_batch_with_a_sentence(run):
    from generations.tasks import run_batch

    batch = new_batch(run)
    run.checkpoint_dir = "/nowhere/checkpoint"
    run.save()

    run_batch(batch.pk)

    batch.refresh_from_db()
    assert batch.status == JobStatus.FAILED
    assert batch.error == "The model files are missing: /nowhere/checkpoint is not there."


def test_the_batch_task_refreshes_the_runs_leak_report(run, fake, monkeypatch):
    from generations.tasks import run_batch

    refreshed = []
    monkeypatch.setattr(
        "generations.report.refresh_run_report.delay",
        lambda run_id, **kwargs: refreshed.append((run_id, kwargs)),
    )
    batch = new_batch(run)

    run_batch(batch.pk)

    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED
    assert refreshed == [(run.pk, {"with_perplexity": False})]


# ------------------------------------------------------------------------------ pages
def test_batches_are_staff_only(member_client, run):
    assert member_client.get(reverse("generations:batches")).status_code == 403
    batch = new_batch(run)  # a batch's own page and its cancel button too
    assert member_client.get(reverse("generations:batch", args=[batch.pk])).status_code == 403
    cancel = reverse("generations:cancel_batch", args=[batch.pk])
    assert member_client.post(cancel).status_code == 403


def test_start_form_defaults_to_the_active_run_and_lists_allowed_speakers(
    staff_client, run, friends
):
    friends["cy"].opted_out = True
    friends["cy"].save()

    page = staff_client.get(reverse("generations:batches"))

    assert page.context["form"]["run"].value() == run.pk
    html = page.content.decode()
    assert 'name="quota_ann"' in html and 'name="quota_bo"' in html
    assert 'name="quota_cy"' not in html


def test_the_quotas_follow_the_model_picked(staff_client, run, friends, tmp_path):
    """The quota inputs were always the active model's friends: picking an older model gave
    "X was not trained on ..." until those were zeroed, and its own friends could not be asked
    for. Picking a model asks for its friends (htmx), and ?run= does the same without it."""
    from ingest.models import Speaker

    dee = Speaker.create_named("Dee")
    older = make_run(
        run.checkpoint_dir, {"ann": friends["ann"], "dee": dee}, active=False
    )  # trained on Ann and Dee only
    url = reverse("generations:batches")
    page = staff_client.get(url).content.decode()
    assert 'hx-get="/batches/?quotas=1"' in page and 'id="quotas"' in page

    swapped = staff_client.get(
        url, {"quotas": 1, "run": older.pk}, headers={"HX-Request": "true"}
    ).content.decode()
    assert swapped.lstrip().startswith('<fieldset id="quotas"')
    assert 'name="quota_ann"' in swapped and 'name="quota_dee"' in swapped
    assert 'name="quota_bo"' not in swapped

    plain = staff_client.get(url, {"run": older.pk})
    assert plain.context["form"]["run"].value() == older.pk
    assert 'name="quota_dee"' in plain.content.decode()
    # A run that cannot be generated from (or junk) falls back to the active model's friends.
    assert 'name="quota_bo"' in staff_client.get(url, {"run": "x"}).content.decode()


def test_staff_start_a_batch_and_it_is_queued_for_the_worker(
    staff_client, run, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr("generations.tasks.run_batch.delay", queued.append)
    form = {
        "run": run.pk, "quota_ann": 2, "quota_bo": 0, "quota_cy": 1, "conversations": 1,
        "temperature": 0.7, "top_p": 0.9, "top_k": 40, "max_new_tokens": 30,
        "prompt": "saturday", "base_seed": 99,
    }  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("generations:batches"), form)

    batch = GenerationBatch.objects.get()
    assert response.url == batch.get_absolute_url()
    assert queued == [batch.pk]
    assert batch.per_speaker == {"ann": 2, "cy": 1}
    assert (batch.conversations, batch.temperature, batch.prompt, batch.base_seed) == (
        1, 0.7, "saturday", 99,
    )  # fmt: skip


def test_starting_a_batch_for_an_opted_out_friend_shows_why(staff_client, run, friends):
    form = {
        "run": run.pk, "quota_ann": 1, "quota_bo": 1, "quota_cy": 0, "conversations": 0,
        "temperature": 0.9, "top_p": 0.95, "top_k": 50, "max_new_tokens": 60, "base_seed": 1,
    }  # fmt: skip
    page = staff_client.get(reverse("generations:batches"))  # the form offered Bo...
    friends["bo"].opted_out = True  # ...who opted out before it was sent
    friends["bo"].save()

    response = staff_client.post(reverse("generations:batches"), form)

    assert page.status_code == 200
    assert "Bo has opted out, so joe does not write in their voice." in response.content.decode()
    assert not GenerationBatch.objects.exists()


def test_batch_page_polls_while_running_and_stops_at_the_end(staff_client, run, fake):
    batch = new_batch(run)
    url = reverse("generations:batch", args=[batch.pk])

    polling = staff_client.get(url, headers={"HX-Request": "true"})
    execute_batch(batch.pk)
    finished = staff_client.get(url, headers={"HX-Request": "true"})

    assert polling.status_code == 200 and 'hx-trigger="every 1s"' in polling.content.decode()
    assert finished.status_code == 286
    html = finished.content.decode()
    assert "hx-trigger" not in html
    assert reverse("generations:gallery") in html
    assert "fresh take" in html


def test_cancel_button_cancels_a_queued_batch(staff_client, run):
    batch = new_batch(run)

    response = staff_client.post(reverse("generations:cancel_batch", args=[batch.pk]))

    batch.refresh_from_db()
    assert response.url == batch.get_absolute_url()
    assert batch.status == JobStatus.CANCELLED
    assert batch.progress_note == "Cancelled before it started."  # not "Waiting for…" any more
    page = staff_client.get(batch.get_absolute_url()).content.decode()
    assert "Cancelled: the batch had not started." in page


def test_cancel_ends_at_once_a_batch_whose_worker_went_silent(staff_client, run):
    batch = new_batch(run)
    batch.mark_running()
    GenerationBatch.objects.filter(pk=batch.pk).update(
        worker_host="gpu@box", heartbeat_at=timezone.now() - timedelta(minutes=6)
    )
    page = staff_client.get(batch.get_absolute_url()).content.decode()
    assert 'data-testid="worker-silent"' in page

    response = staff_client.post(reverse("generations:cancel_batch", args=[batch.pk]))

    batch.refresh_from_db()
    assert batch.status == JobStatus.CANCELLED  # not "running" until the broker's next try
    assert batch.progress_note == services.WORKER_STOPPED
    page = staff_client.get(response.url).content.decode()
    assert "Cancelled; what it kept stays." in page and "Stopping…" not in page


def test_cancel_of_a_batch_whose_worker_reports_waits_for_the_worker(staff_client, run):
    batch = new_batch(run)
    batch.mark_running()
    GenerationBatch.objects.filter(pk=batch.pk).update(heartbeat_at=timezone.now())

    staff_client.post(reverse("generations:cancel_batch", args=[batch.pk]))

    batch.refresh_from_db()
    assert batch.status == JobStatus.RUNNING and batch.cancel_requested
    page = staff_client.get(batch.get_absolute_url()).content.decode()
    assert "Stopping…" in page and 'data-testid="worker-silent"' not in page


def test_batch_page_shows_leaks_to_staff(staff_client, run, fake):
    fake.messages = [CORPUS["ann"][0]]
    batch = execute_batch(new_batch(run, per_speaker={"ann": 1}).pk)

    html = staff_client.get(batch.get_absolute_url()).content.decode()

    assert "leak ·" in html
    assert "1</strong><span>verbatim leaks" in html
    count = html.split('data-testid="batch-count">', 1)[1].split("<", 1)[0]
    assert count == f"{batch.stats.get('kept', 0)} of 1 snippet kept"  # not "1 of 1": none was


@pytest.mark.slow
def test_generate_command_runs_a_batch_in_the_terminal(run, capsys):
    call_command("generate", "--per-speaker", "1", "--conversations", "1", "--seed", "7",
                 "--max-new-tokens", "6")  # fmt: skip

    batch = GenerationBatch.objects.get()
    assert batch.status == JobStatus.SUCCEEDED and batch.base_seed == 7
    assert batch.snippets.count() == 4
    assert "Done: kept 4 of 4 generated" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--top-p", "0", "--top-p: Ensure this value is greater than or equal to 0.01."),
        ("--max-new-tokens", "0", "--max-new-tokens: Ensure this value is greater than or equal"),
        ("--top-k", "-5", "--top-k: Ensure this value is greater than or equal to 0."),
        ("--temperature", "-1", "--temperature: Ensure this value is greater than or equal to 0"),
        ("--conversations", "-3", "--conversations cannot be negative."),
    ],
)
def test_generate_command_refuses_settings_the_page_refuses(run, option, value, said):
    with pytest.raises(CommandError, match=said):
        call_command("generate", "--per-speaker", "1", option, value)

    assert not GenerationBatch.objects.exists()  # no row left "running" on the Batches page


def test_generate_command_fails_the_batch_on_an_unexpected_error(run, monkeypatch):
    def broken(checkpoint_dir):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(services, "load_generator", broken)

    with pytest.raises(RuntimeError):
        call_command("generate", "--per-speaker", "1")

    batch = GenerationBatch.objects.get()
    assert batch.status == JobStatus.FAILED
    assert batch.error.startswith("Generation stopped on an unexpected error (RuntimeError)")


def test_the_batches_table_follows_running_batches_then_stops(staff_client, run):
    batch = new_batch(run)
    page = staff_client.get(reverse("generations:batches")).content.decode()
    assert 'id="batches-table"' in page and 'hx-trigger="every 3s"' in page

    poll = staff_client.get(reverse("generations:batches"), headers={"HX-Request": "true"})
    assert poll.status_code == 200 and f"#{batch.pk}</a>" in poll.content.decode()

    execute_batch(batch.pk)
    poll = staff_client.get(reverse("generations:batches"), headers={"HX-Request": "true"})
    assert poll.status_code == 286  # htmx stops polling: nothing moves any more
    assert "Succeeded" in poll.content.decode() and "every 3s" not in poll.content.decode()


def test_a_batch_page_names_its_speakers_as_the_site_does(staff_client, run, friends):
    friends["ann"].rename("Annabel Lee")
    batch = new_batch(run)

    page = staff_client.get(batch.get_absolute_url()).content.decode()

    assert "Annabel Lee: 2, Bo: 1" in page
    assert "ann: 2" not in page


def test_while_the_first_model_trains_the_page_says_so(staff_client, friends):
    """A run queued or training and none finished: the page said only that no run had a
    model, as if nobody had started one."""
    first = TrainingRun.objects.create(name="first", status=JobStatus.QUEUED)

    html = staff_client.get(reverse("generations:batches")).content.decode()

    assert (
        f'A first model is training: <a href="{first.get_absolute_url()}">first</a> (queued, '
        "waiting for the training worker). Once it has finished you can generate a batch"
    ) in html
    assert "No training run has finished with a model yet" not in html
