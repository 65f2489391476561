"""A run page's quality and leak report: perplexity against both baselines, fidelity, leaks."""

from __future__ import annotations

import pytest

from generations.models import Snippet
from generations.report import refresh_report
from tests.test_trainer_runs import TINY_HP, make_corpus, models_dir, tiny_base  # noqa: F401
from trainer import services

pytestmark = pytest.mark.django_db


@pytest.mark.slow
def test_report_after_training_has_both_baselines_fidelity_and_leak_rate(models_dir, staff_client):  # noqa: F811
    speakers = make_corpus(("Alice", "Bob", "Carol"))
    run = services.new_run(name="r", base_model="tiny", hyperparameters=TINY_HP)
    run = services.execute_run(run.pk)
    assert run.status == "succeeded", run.error
    for slug, text, shared in [("alice", "pho tonight?", 9), ("bob", "always yes", 2)]:
        Snippet.objects.create(
            run=run, speaker=speakers[slug.title()], text=text, longest_shared_run=shared
        )

    report = refresh_report(run.pk)

    rows = {row["speaker"]: row for row in report["perplexity"]}
    assert set(rows) == {"__all__", "alice", "bob", "carol"}
    for row in rows.values():
        assert row["fine_tuned"] > 1 and row["base_model"] > 1 and row["unigram"] > 1
    # ten steps of training on very predictable habits beat the untrained base model
    assert rows["__all__"]["fine_tuned"] < rows["__all__"]["base_model"]
    assert report["fidelity"]["chance"] == pytest.approx(1 / 3)
    assert report["fidelity"]["generated"] == 2
    assert report["leaks"] == {"snippets": 2, "leaks": 1, "threshold": 8, "rate": 0.5}
    page = staff_client.get(run.get_absolute_url()).content.decode()
    assert "Held-out perplexity" in page and "<th>Unigram</th>" in page
    assert "of 2 generated messages (chance: 33%" in page
    assert "<strong>1</strong> of 2 snippets shared 8 or more" in page


def test_a_report_before_any_snippet_says_so_instead_of_zeroes(staff_client):
    from tests.test_trainer_runs import finished_run

    run = finished_run(
        "fresh",
        report={
            "fidelity": {"generated": 0, "accuracy": None, "chance": 0.5, "real_accuracy": 0.8},
            "leaks": {"snippets": 0, "leaks": 0, "threshold": 8, "rate": None},
        },
    )

    page = staff_client.get(run.get_absolute_url()).content.decode()

    assert "No generated messages from this run yet" in page
    assert "No snippets from this run yet." in page
    assert "of 0 generated" not in page and "0 of 0 snippets" not in page


def test_speakers_with_nothing_held_out_are_named_under_the_perplexity_table(staff_client):
    from ingest.models import Speaker
    from tests.test_trainer_runs import finished_run

    ann, bo, cy = (
        Speaker.objects.create(display_name=n, slug=n.lower()) for n in ("Ann", "Bo", "Cy")
    )
    row = {"fine_tuned": 9.0, "base_model": 30.0, "unigram": 50.0}
    run = finished_run(
        "r",
        speaker_ids=[ann.pk, bo.pk, cy.pk],
        report={
            "perplexity": [
                {"speaker": "__all__", "name": "", **row},
                {"speaker": "ann", "name": "Ann", **row},
            ]
        },
    )

    page = staff_client.get(run.get_absolute_url()).content.decode()

    assert "No row for Bo, Cy: none of their messages are in the held-out sessions" in page


def test_the_two_perplexities_of_a_run_say_what_each_measures(staff_client):
    """The run's 27.6 and its report's 44.4 read as the same number measured twice, one wrong:
    the first counts every validation token, markers included; the report, message text only."""
    import math

    from tests.test_trainer_runs import finished_run

    row = {"fine_tuned": 44.4, "base_model": 90.0, "unigram": 120.0}
    run = finished_run(
        "demo",
        final_val_loss=math.log(27.6),
        hyperparameters={"val_fraction": 0.1},
        report={"perplexity": [{"speaker": "__all__", "name": "", **row}]},
    )

    page = staff_client.get(run.get_absolute_url()).content.decode()

    assert (
        '<strong data-testid="val-perplexity">27.6</strong>'
        "<span>validation perplexity, every token</span>"
    ) in page
    assert "<h3>Held-out perplexity, message text only (lower is better)</h3>" in page
    assert "<td>44.4</td>" in page
    assert "the held-out 10% that training never saw" in page
    assert "counts every token, markers included, so the two numbers differ" in page
