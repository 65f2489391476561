"""Members watch the model write live: streaming onto the row, limits, consent, leaks, saving."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from generations import live, services
from generations.models import LiveGeneration, Snippet
from generations.services import regenerate
from ingest.models import Speaker
from joe_site.jobs import JobStatus
from tests.builders.generation import (
    CORPUS,
    FakeGenerator,
    checkpoint_copy,
    make_friends,
    make_run,
    tiny_checkpoint,
    wait_for_gpu_worker,
)
from trainer.models import TrainingRun

LIVE = reverse("generations:live")


@pytest.fixture
def worker_up(monkeypatch):
    """Pages that start a generation, without asking Redis whether a worker listens."""
    monkeypatch.setattr(live, "gpu_worker_is_up", lambda: True)


@pytest.fixture
def fake(monkeypatch):
    generator = FakeGenerator()
    monkeypatch.setattr(services, "load_generator", lambda checkpoint_dir: generator)
    return generator


@pytest.fixture
def row_snapshots(monkeypatch):
    """Every state of the row's lines that the worker wrote while streaming."""
    snapshots: list[list[dict]] = []
    flush = live._Stream.flush

    def recording_flush(stream):
        flush(stream)
        snapshots.append(LiveGeneration.objects.get(pk=stream.generation.pk).lines)

    monkeypatch.setattr(live._Stream, "flush", recording_flush)
    return snapshots


def ask(client, speaker=None, *, speakers=(), opening="", htmx=False):
    data = {"opening": opening, "temperature": 0.9}
    if speakers:
        data |= {"mode": "conversation", "speakers": [s.pk for s in speakers]}
    else:
        data |= {"mode": "speaker", "speaker": speaker.pk}
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(LIVE, data, headers=headers)


def text_of(generation: LiveGeneration) -> str:
    return " ".join(line["text"] for line in generation.lines)


# ------------------------------------------------------------------------------ streaming
@pytest.mark.django_db
def test_member_watches_a_message_being_written(member_client, run, friends, worker_up,
                                                 row_snapshots):  # fmt: skip
    response = ask(member_client, friends["ann"])
    generation = LiveGeneration.objects.get()
    assert response.url == reverse("generations:live_generation", args=[generation.pk])
    waiting = member_client.get(response.url, headers={"HX-Request": "true"})

    live.execute_live(generation.pk, speaker_ids=[friends["ann"].pk])

    texts = [" ".join(line["text"] for line in lines) for lines in row_snapshots]
    assert len(set(texts)) >= 3, "the row's text grew a few tokens at a time"
    assert len(texts[0]) < len(texts[-1])
    generation.refresh_from_db()
    assert generation.status == JobStatus.SUCCEEDED
    assert generation.lines[0]["speaker"] == "ann" and generation.lines[0]["name"] == "Ann"
    assert waiting.status_code == 200 and 'hx-trigger="every 300ms"' in waiting.content.decode()
    done = member_client.get(response.url, headers={"HX-Request": "true"})
    assert done.status_code == 286, "polling stops once it is written"
    assert "hx-trigger" not in done.content.decode()
    assert "Save to the gallery" in done.content.decode()


@pytest.mark.django_db
def test_htmx_generate_swaps_in_the_stream_without_leaving_the_page(member_client, run, friends,
                                                                    worker_up):  # fmt: skip
    response = ask(member_client, friends["bo"], htmx=True)

    generation = LiveGeneration.objects.get()
    assert response.status_code == 200
    assert response["HX-Push-Url"] == reverse("generations:live_generation", args=[generation.pk])
    assert 'id="live-stream"' in response.content.decode()
    assert "Waiting for the generation worker" in response.content.decode()


@pytest.mark.django_db
def test_the_recent_list_follows_a_generation_started_and_ended_without_a_reload(
    member_client, run, friends, worker_up
):
    """The list under the form was only rendered with the page: a generation started with htmx
    was missing from it, and its badge said "Queued" until a reload."""
    started = ask(member_client, friends["bo"], htmx=True).content.decode()
    generation = LiveGeneration.objects.get()
    link = reverse("generations:live_generation", args=[generation.pk])
    recent = started[started.index('id="live-recent"') :]
    assert (
        'hx-swap-oob="true"'
        in started[started.rindex("<section", 0, started.index('id="live-recent"')) :]
    )
    assert f'href="{link}"' in recent and "Queued" in recent

    polled = member_client.get(link, headers={"HX-Request": "true"}).content.decode()
    assert "live-recent" not in polled, (
        "a poll while it is written leaves the list (and focus) alone"
    )

    LiveGeneration.objects.filter(pk=generation.pk).update(status=JobStatus.SUCCEEDED)
    done = member_client.get(link, headers={"HX-Request": "true"})
    assert done.status_code == 286
    recent = done.content.decode()[done.content.decode().index('id="live-recent"') :]
    assert "Succeeded" in recent and "Queued" not in recent


@pytest.mark.django_db
def test_a_conversation_only_has_the_friends_picked(member_client, run, friends, worker_up):
    ask(member_client, speakers=[friends["ann"], friends["cy"]], opening="so")
    generation = LiveGeneration.objects.get()
    assert generation.speaker_ids == [friends["ann"].pk, friends["cy"].pk]  # kept on the row

    live.execute_live(generation.pk)  # what the worker runs: the friends come from the row

    generation.refresh_from_db()
    assert generation.conversation and generation.status == JobStatus.SUCCEEDED
    assert {line["speaker"] for line in generation.lines} <= {"ann", "cy"}
    assert generation.lines[0]["text"].startswith("so")
    # Its page offers the same conversation again: the friends picked are still ticked.
    page = member_client.get(reverse("generations:live_generation", args=[generation.pk]))
    form = page.context["form"]
    assert [int(pk) for pk in form["speakers"].value()] == generation.speaker_ids


@pytest.mark.django_db
def test_a_conversation_needs_two_friends(member_client, run, friends, worker_up):
    response = ask(member_client, speakers=[friends["ann"]])

    assert "Pick at least two friends for a conversation." in response.content.decode()
    assert not LiveGeneration.objects.exists()


@pytest.mark.django_db
def test_a_saved_live_snippet_regenerates_the_same_text(member, run, friends, worker_up):
    generation = live.start_live(member=member, speaker=friends["cy"], opening="well")
    live.execute_live(generation.pk, speaker_ids=[])

    generation.refresh_from_db()
    snippet = live.save_to_gallery(generation=generation, member=member)

    assert regenerate(snippet) == snippet.text == text_of(generation)


@pytest.mark.django_db
def test_member_stops_a_generation_and_keeps_what_was_written(
    member_client, member, run, friends, fake, worker_up, monkeypatch
):
    fake.messages = ["one two three four five six seven eight nine ten eleven twelve"]
    monkeypatch.setattr(live, "CANCEL_CHECK_EVERY_S", 0)
    generation = live.start_live(member=member, speaker=friends["ann"])
    stop = reverse("generations:stop_live", args=[generation.pk])
    flush = live._Stream.flush

    def stop_after_first_words(stream):
        flush(stream)
        member_client.post(stop)

    monkeypatch.setattr(live._Stream, "flush", stop_after_first_words)
    live.execute_live(generation.pk, speaker_ids=[])

    generation.refresh_from_db()
    assert generation.status == JobStatus.CANCELLED
    assert text_of(generation) == "one two three"


@pytest.mark.django_db
def test_stopping_before_the_worker_starts_means_it_never_runs(
    member_client, member, run, friends, fake, worker_up
):
    generation = live.start_live(member=member, speaker=friends["ann"])

    member_client.post(reverse("generations:stop_live", args=[generation.pk]))
    live.execute_live(generation.pk, speaker_ids=[])

    generation.refresh_from_db()
    assert generation.status == JobStatus.CANCELLED and fake.calls == 0


# ------------------------------------------------------------------------------ refusals
@pytest.mark.django_db
def test_rate_limit_per_member_per_hour(member_client, member, run, friends, worker_up, settings):
    settings.JOE_LIVE_RATE_LIMIT = 2
    for minutes_ago in (50, 10):
        LiveGeneration.objects.create(
            member=member, run=run, speaker=friends["ann"],
            created_at=timezone.now() - timedelta(minutes=minutes_ago),
        )  # fmt: skip
    LiveGeneration.objects.create(  # over an hour ago: does not count
        member=member, run=run, created_at=timezone.now() - timedelta(minutes=70)
    )

    response = ask(member_client, friends["ann"])

    html = response.content.decode()
    assert "You have made 2 live generations in the last hour, the most allowed." in html
    assert "The next one frees up in 10 minutes." in html
    assert LiveGeneration.objects.count() == 3


@pytest.mark.django_db
def test_a_rate_limit_of_zero_turns_live_generation_off(member_client, run, friends, worker_up,
                                                        settings):  # fmt: skip
    settings.JOE_LIVE_RATE_LIMIT = 0

    response = ask(member_client, friends["ann"])

    assert response.status_code == 200
    assert "Live generation is turned off on this site." in response.content.decode()
    assert not LiveGeneration.objects.exists()


@pytest.mark.django_db
def test_a_limit_of_one_says_one_generation(member_client, member, run, friends, worker_up,
                                            settings):  # fmt: skip
    settings.JOE_LIVE_RATE_LIMIT = 1
    LiveGeneration.objects.create(member=member, run=run, speaker=friends["ann"])

    response = ask(member_client, friends["ann"])

    assert "You have made 1 live generation in the last hour, the most allowed." in (
        response.content.decode()
    )


@pytest.mark.django_db
def test_rate_limit_is_per_member(client, other_member, member, run, friends, worker_up, settings):
    settings.JOE_LIVE_RATE_LIMIT = 1
    LiveGeneration.objects.create(member=member, run=run, speaker=friends["ann"])
    client.force_login(other_member)

    ask(client, friends["ann"])

    assert LiveGeneration.objects.filter(member=other_member).count() == 1


@pytest.mark.django_db
def test_opted_out_friend_is_refused(member_client, run, friends, worker_up):
    page = member_client.get(LIVE)
    friends["bo"].opted_out = True
    friends["bo"].save()

    alone = ask(member_client, friends["bo"])
    together = ask(member_client, speakers=[friends["ann"], friends["bo"]])

    assert "Bo" in page.content.decode()
    refusal = "Bo has opted out, so joe does not write in their voice."
    assert refusal in alone.content.decode() and refusal in together.content.decode()
    assert not LiveGeneration.objects.exists()
    assert ">Bo<" not in member_client.get(LIVE).content.decode(), "no longer offered"


@pytest.mark.django_db
def test_the_form_tells_no_member_the_name_of_someone_it_does_not_offer(
    member_client, run, friends, worker_up
):
    """A phone backup brings contacts staff keep out of training and out of members' sight:
    posting one's id to the live form must not answer with their name."""
    contact = Speaker.objects.create(display_name="Dr Quill's clinic", slug="dr-quill")
    # Opted out too, but never a voice of the model: their choice is no reason to name them.
    opted_out = Speaker.objects.create(display_name="Dee Contact", slug="dee", opted_out=True)

    alone = ask(member_client, contact)
    together = ask(member_client, speakers=[friends["ann"], contact])
    out_alone = ask(member_client, opted_out)
    out_together = ask(member_client, speakers=[friends["ann"], opted_out])

    for response in (alone, together, out_alone, out_together):
        assert "Quill" not in response.content.decode()
        assert "Dee" not in response.content.decode()
        assert "not one of the available choices" in response.content.decode()
    assert not LiveGeneration.objects.exists()


@pytest.mark.django_db
def test_no_worker_on_redis_is_said_at_once(member_client, run, friends, redis_url):
    cache.clear()

    started = time.monotonic()
    response = ask(member_client, friends["ann"])

    assert live.NO_WORKER in response.content.decode()
    assert "No generation worker is running right now" in live.NO_WORKER
    assert time.monotonic() - started < 5
    assert not LiveGeneration.objects.exists()


@pytest.mark.django_db
def test_without_redis_a_request_nobody_picks_up_says_so_then_gives_up(
    member_client, member, run, friends, settings
):
    settings.REDIS_URL = ""  # the embedded broker cannot be asked; the row's age tells
    ask(member_client, friends["ann"])
    generation = LiveGeneration.objects.get()
    url = reverse("generations:live_generation", args=[generation.pk])

    fresh = member_client.get(url, headers={"HX-Request": "true"})
    LiveGeneration.objects.filter(pk=generation.pk).update(
        created_at=timezone.now() - timedelta(seconds=10)
    )
    waiting = member_client.get(url, headers={"HX-Request": "true"})
    LiveGeneration.objects.filter(pk=generation.pk).update(
        created_at=timezone.now() - timedelta(seconds=90)
    )
    given_up = member_client.get(url, headers={"HX-Request": "true"})

    assert "Waiting for the generation worker" in fresh.content.decode()
    assert live.NO_WORKER_YET in waiting.content.decode() and waiting.status_code == 200
    assert given_up.status_code == 286
    assert live.NO_WORKER in given_up.content.decode()
    live.execute_live(generation.pk, speaker_ids=[])  # a worker that comes up later skips it
    generation.refresh_from_db()
    assert generation.status == JobStatus.FAILED and generation.lines == []


@pytest.mark.django_db
def test_a_generation_whose_worker_was_killed_mid_way_ends_instead_of_polling_for_ever(
    member_client, member, run, friends, worker_up
):
    ask(member_client, friends["ann"])
    generation = LiveGeneration.objects.get()
    url = reverse("generations:live_generation", args=[generation.pk])
    generation.mark_running()
    LiveGeneration.objects.filter(pk=generation.pk).update(
        lines=[{"speaker": "ann", "name": "Ann", "text": "so anyway"}]
    )
    writing = member_client.get(url, headers={"HX-Request": "true"})
    LiveGeneration.objects.filter(pk=generation.pk).update(
        started_at=timezone.now() - timedelta(minutes=6)
    )

    lost = member_client.get(url, headers={"HX-Request": "true"})

    assert writing.status_code == 200 and "Writing…" in writing.content.decode()
    assert lost.status_code == 286  # the page stops asking
    html = lost.content.decode()
    assert escape(live.WORKER_LOST) in html and "Stop</button>" not in html
    generation.refresh_from_db()
    assert generation.status == JobStatus.FAILED
    assert not live._worker_is_busy()  # nor is the next member told the worker is busy


@pytest.mark.django_db
def test_a_request_stuck_behind_a_batch_says_the_worker_is_busy(member_client, run, friends,
                                                                 settings):  # fmt: skip
    from generations.models import GenerationBatch

    settings.REDIS_URL = ""
    GenerationBatch.objects.create(
        run=run, status=JobStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    ask(member_client, friends["ann"])
    generation = LiveGeneration.objects.get()
    LiveGeneration.objects.filter(pk=generation.pk).update(
        created_at=timezone.now() - timedelta(seconds=90)
    )

    response = member_client.get(reverse("generations:live_generation", args=[generation.pk]))

    assert live.WORKER_BUSY in response.content.decode()


@pytest.mark.django_db
def test_a_batch_or_run_whose_worker_was_killed_does_not_pass_for_a_busy_worker(
    member_client, run, friends, monkeypatch
):
    from generations.models import GenerationBatch

    monkeypatch.setattr(live, "gpu_worker_is_up", lambda: False)
    long_ago = timezone.now() - timedelta(minutes=30)
    lost = {"status": JobStatus.RUNNING, "started_at": long_ago, "heartbeat_at": long_ago}
    GenerationBatch.objects.create(run=run, **lost)
    TrainingRun.objects.filter(pk=run.pk).update(**lost)

    response = ask(member_client, friends["ann"])

    assert escape(live.NO_WORKER) in response.content.decode()  # said at once, and true
    assert not LiveGeneration.objects.exists()


# ------------------------------------------------------------------------------ leaks, escaping
@pytest.mark.django_db
def test_a_leak_is_stopped_before_any_of_it_is_saved(
    member, run, friends, fake, row_snapshots, worker_up
):
    copied = CORPUS["ann"][0]
    fake.messages = [copied]
    generation = live.start_live(member=member, speaker=friends["ann"])

    live.execute_live(generation.pk, speaker_ids=[])

    index = services.leak_index(run)
    for lines in row_snapshots:
        assert services.longest_shared_run(index, [line["text"] for line in lines]) < 8
    generation.refresh_from_db()
    assert generation.status == JobStatus.FAILED and generation.error == live.LEAK_STOPPED
    assert generation.lines == [] and generation.longest_shared_run >= 8
    assert copied not in str(LiveGeneration.objects.values_list("lines", flat=True))
    assert not Snippet.objects.exists()


@pytest.mark.django_db
def test_novel_text_passes_the_leak_guard(member, run, friends, fake, worker_up):
    fake.messages = ["i will be at the old station at noon"]  # five words in common: fine
    generation = live.start_live(member=member, speaker=friends["ann"])

    live.execute_live(generation.pk, speaker_ids=[])

    generation.refresh_from_db()
    assert generation.status == JobStatus.SUCCEEDED
    assert generation.longest_shared_run == 5


@pytest.mark.django_db
def test_generated_markup_shows_as_text(member_client, member, run, friends):
    generation = LiveGeneration.objects.create(
        member=member, run=run, speaker=friends["ann"], status=JobStatus.SUCCEEDED,
        lines=[{"speaker": "ann", "name": "Ann", "text": "<script>alert(1)</script><b>hi</b>"}],
    )  # fmt: skip

    html = member_client.get(reverse("generations:live_generation", args=[generation.pk]))

    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;hi&lt;/b&gt;" in html.content.decode()
    assert "<script>alert(1)" not in html.content.decode()


# ------------------------------------------------------------------------------ saving
def finished(member, run, friends, text="a brand new thought about saturday"):
    return LiveGeneration.objects.create(
        member=member, run=run, speaker=friends["ann"], status=JobStatus.SUCCEEDED,
        opening="a brand", seed=42, temperature=0.8,
        lines=[{"speaker": "ann", "name": "Ann", "text": text}],
    )  # fmt: skip


@pytest.mark.django_db
def test_member_saves_a_live_generation_to_the_gallery(member_client, member, run, friends):
    generation = finished(member, run, friends)
    url = reverse("generations:save_live", args=[generation.pk])

    member_client.post(url)
    again = member_client.post(url, headers={"HX-Request": "true"})

    snippet = Snippet.objects.get()
    assert snippet.source == "live" and snippet.created_by == member
    assert snippet.kind == "message" and snippet.speaker == friends["ann"]
    assert list(snippet.speakers.all()) == [friends["ann"]]
    assert (snippet.seed, snippet.temperature, snippet.prompt, snippet.run) == (
        42, 0.8, "a brand", run,
    )  # fmt: skip
    assert snippet.is_visible
    assert "See it in the gallery" in again.content.decode()
    assert 'badge ok">saved' in again.content.decode(), "the recent list says it was saved"
    generation.refresh_from_db()
    assert generation.saved_snippet == snippet


@pytest.mark.django_db
def test_a_leak_cannot_be_saved(member, run, friends):
    generation = finished(member, run, friends, text=CORPUS["bo"][1])

    with pytest.raises(services.GenerationError, match="repeats a real message"):
        live.save_to_gallery(generation=generation, member=member)
    assert not Snippet.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["a brand", "a brand ", "a brand."])
def test_what_the_member_typed_alone_cannot_be_saved_as_a_fake(member, run, friends, text):
    """The model stopped at once: the "fake" would be the member's own opening words, in the
    gallery and on share links as an AI parody of Ann (a batch drops such a message too)."""
    generation = finished(member, run, friends, text=text)

    with pytest.raises(services.GenerationError, match="nothing past your opening words"):
        live.save_to_gallery(generation=generation, member=member)
    assert not Snippet.objects.exists()


@pytest.mark.django_db
def test_members_only_see_and_save_their_own(client, other_member, member, run, friends):
    generation = finished(member, run, friends)
    client.force_login(other_member)

    page = client.get(reverse("generations:live_generation", args=[generation.pk]))
    save = client.post(reverse("generations:save_live", args=[generation.pk]))

    assert page.status_code == 404 and save.status_code == 404
    assert not Snippet.objects.exists()


# ------------------------------------------------------------------------------ a real worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_live_generation_end_to_end_on_a_real_worker(member_client, tmp_path, monkeypatch,
                                                      celery_worker_on_redis):  # fmt: skip
    from generations.sampling import Generator

    friends = make_friends()
    make_run(checkpoint_copy(tiny_checkpoint(), tmp_path / "checkpoint"), friends)
    wait_for_gpu_worker()
    real = Generator.generate_messages

    def unhurried(self, *args, on_token=None, **kwargs):  # a tiny model is faster than a poll
        def slow(index, text):
            time.sleep(0.02)
            on_token(index, text)

        return real(self, *args, on_token=slow if on_token else None, **kwargs)

    monkeypatch.setattr(Generator, "generate_messages", unhurried)

    response = ask(member_client, friends["bo"])
    generation = LiveGeneration.objects.get()
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        generation.refresh_from_db()
        seen.append(text_of(generation))
        if not generation.is_active:
            break
        time.sleep(0.02)

    assert generation.status == JobStatus.SUCCEEDED, generation.error
    growing = [text for text in dict.fromkeys(seen) if text]
    assert len(growing) >= 3, "the row's text grew while the worker wrote"
    page = member_client.get(response.url)
    assert text_of(generation) and escape(generation.lines[0]["text"]) in page.content.decode()


@pytest.mark.django_db
def test_a_live_fake_in_a_voice_that_opted_out_is_hidden_at_once(
    member_client, member, run, friends
):
    generation = finished(member, run, friends, text="a brand new thought about saturday")
    writing = LiveGeneration.objects.create(
        member=member, run=run, speaker=friends["ann"], status=JobStatus.RUNNING,
        lines=[{"speaker": "ann", "name": "Ann", "text": "half a sentence"}],
    )  # fmt: skip
    url = reverse("generations:live_generation", args=[generation.pk])
    assert "a brand new thought" in member_client.get(url).content.decode()

    friends["ann"].opted_out = True
    friends["ann"].save()
    page = member_client.get(url).content.decode()
    live_page = member_client.get(LIVE).content.decode()
    member_client.get(reverse("generations:live_generation", args=[writing.pk]))

    assert "a brand new thought" not in page and "Save to the gallery" not in page
    assert "Hidden: Ann opted out of joe" in page
    assert f'href="{url}"' not in live_page  # gone from "Your recent live generations"
    writing.refresh_from_db()
    assert writing.cancel_requested  # the worker stops writing it


def test_without_a_model_the_page_says_what_staff_should_do(member_client, run):
    """A finished run that is not active is not "no model yet": staff make it active."""
    from trainer.models import TrainingRun

    TrainingRun.objects.filter(pk=run.pk).update(is_active=False)
    html = member_client.get("/live/").content.decode()
    assert "No model is active right now: staff can make a finished run the active model" in html

    TrainingRun.objects.all().delete()
    html = member_client.get("/live/").content.decode()
    assert "There is no active model yet: staff need to train one first." in html


@pytest.mark.django_db
def test_a_lowered_leak_threshold_gets_an_index_that_sees_short_copies(run, settings):
    """An index built for the default threshold reports runs of 4 words and more: lowered to
    2 later, copies of 2 or 3 words passed unseen (the index said 0)."""
    settings.JOE_LEAK_THRESHOLD = 8
    assert services.leak_index(run).min_n == 4
    three = " ".join(CORPUS["ann"][0].split()[:3])

    settings.JOE_LEAK_THRESHOLD = 2
    index = services.leak_index(run)

    assert index.min_n == 2
    assert services.longest_shared_run(index, [three]) == 3


def test_while_the_first_model_trains_the_page_says_so(member_client, staff_client, friends):
    """The demo's first minutes: a run training and no model yet, and Live said only that there
    was no active model, as if nobody had started one."""
    first = TrainingRun.objects.create(
        name="first", status=JobStatus.RUNNING, progress_done=40, progress_total=100
    )

    html = member_client.get("/live/").content.decode()
    staff_html = staff_client.get("/live/").content.decode()

    assert "A first model is training (40% done)." in html
    assert "There is no active model yet" not in html
    assert f'<a href="{first.get_absolute_url()}">first</a> (40% done)' in staff_html


@pytest.mark.django_db
def test_a_generation_made_seconds_ago_was_made_just_now(member_client, member, run, friends):
    """The recent list said "Ann, 0 minutes ago" for a generation started a moment before."""
    fresh = finished(member, run, friends, text="a brand new thought")
    older = finished(member, run, friends, text="an older thought")
    LiveGeneration.objects.filter(pk=older.pk).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )

    page = member_client.get(LIVE).content.decode()

    assert "0 minutes" not in page
    assert (
        f'<a href="{reverse("generations:live_generation", args=[fresh.pk])}">Ann, just now</a>'
        in page
    )
    assert "Ann, 5\xa0minutes ago</a>" in page
