# ruff: noqa: F811 (the trainer fixtures imported below are used as arguments)
"""The corpus changes under a run: a friend opts out while the worker reads it, staff exclude,
merge or move people after it trained. The run is flagged, and its leak guard still knows what
it learnt."""

from __future__ import annotations

import pytest

from accounts import consent
from ingest.models import Speaker
from joe_site.jobs import JobStatus
from tests.test_trainer_runs import (  # noqa: F401 (fixtures)
    make_corpus,
    models_dir,
    tiny_base,
    tiny_run,
)
from trainer import corpus, services

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
    assert run.needs_retrain == "Alice opted out after this run was trained on their messages."
    assert Speaker.objects.get(pk=speakers["Alice"].pk).opted_out
