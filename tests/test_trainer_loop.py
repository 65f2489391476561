"""The training loop on a tiny GPT-2 on CPU: learning, exact resume, cancel, checkpoints."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import torch

from trainer.ml.base_models import build_tiny_gpt2, load_checkpoint, load_for_training
from trainer.ml.chat_format import ChatFormat
from trainer.ml.data import ChatDataset, CorpusMessage, DataConfig, build_dataset
from trainer.ml.loop import (
    CHECKPOINT_DIR,
    STATE_FILE,
    Progress,
    TrainConfig,
    WindowOrder,
    checkpoint_path,
    evals_left,
    lr_factor,
    train,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core CI box, two OpenMP threads competing with other
    processes run these tiny matmuls several times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FORMAT = ChatFormat(speakers={"alice": "Alice", "bob": "Bob"})
WINDOW = 32


def corpus(sessions: int = 24, seed: int = 0) -> list[CorpusMessage]:
    """A friend group with very predictable habits, so a tiny model learns something in steps."""
    rng = random.Random(seed)
    t0 = datetime(2024, 1, 1)
    out = []
    for s in range(sessions):
        for i in range(4):
            slug = "alice" if i % 2 == 0 else "bob"
            text = rng.choice(["pho tonight?", "pho?"] if slug == "alice" else ["always", "yes"])
            out.append(CorpusMessage("c", slug, text, t0 + timedelta(hours=s, minutes=i)))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "gpt2", n_positions=WINDOW)


@pytest.fixture(scope="module")
def dataset(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> ChatDataset:
    _, tok = load_for_training(tiny, FORMAT, tmp_path_factory.mktemp("cache"))
    return build_dataset(corpus(), tok, FORMAT, DataConfig(window_len=WINDOW, val_fraction=0.15))


def fresh(tiny: Path, tmp_path: Path):
    return load_for_training(tiny, FORMAT, tmp_path / "cache")


def config(**overrides) -> TrainConfig:
    base = {
        "max_steps": 6,
        "batch_size": 2,
        "grad_accum": 2,
        "lr": 3e-2,  # high, but a random tiny model on toy data: it learns in a handful of steps
        "warmup_steps": 1,
        "window_len": WINDOW,
        "eval_every": 3,
        "checkpoint_every_s": 1e9,
        "progress_every_s": 0,
    }
    return TrainConfig(**(base | overrides))


def test_validation_loss_falls_and_checkpoint_loads(
    tiny: Path, dataset: ChatDataset, tmp_path: Path
) -> None:
    model, tok = fresh(tiny, tmp_path)
    reports: list[Progress] = []
    result = train(config(), model, tok, dataset, tmp_path / "run", on_progress=reports.append)

    assert result.status == "completed" and result.step == result.total_steps == 6
    steps_with_val = [h["step"] for h in result.history]
    assert steps_with_val == [0, 3, 6]
    first, last = result.history[0]["val_loss"], result.history[-1]["val_loss"]
    assert last < first - 3.0
    assert result.final_val_loss == last
    assert result.perplexity == pytest.approx(math.exp(last))
    assert len(result.train_losses) == 6 and result.tokens_seen > 0 and result.tokens_per_s > 0

    # Progress: every step (progress_every_s=0), evals, and the end.
    events = [r.event for r in reports]
    assert events[0] == "eval" and events[-1] == "done" and "step" in events
    mid = next(r for r in reports if r.event == "step" and r.step == 2)
    assert mid.total_steps == 6 and mid.tokens_per_s > 0 and mid.eta_s is not None
    assert mid.train_loss is not None and mid.val_loss == first
    json.dumps([vars(r) for r in reports])  # JSON-able for the UI

    folder = result.checkpoint
    assert folder == tmp_path / "run" / CHECKPOINT_DIR
    assert (folder / STATE_FILE).is_file() and (folder / "joe_format.json").is_file()
    info = json.loads((folder / "training.json").read_text())
    assert info["status"] == "completed" and info["step"] == 6
    assert info["dataset"]["train"]["windows"] == len(dataset.train)
    assert not [p for p in (tmp_path / "run").iterdir() if p.name != CHECKPOINT_DIR]

    model2, tok2, fmt2 = load_checkpoint(folder)
    assert fmt2 == FORMAT and tok2.pad_token_id == tok.pad_token_id
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.fixture
def slow_evaluations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each evaluation takes over a second, a tiny model's steps a fraction of one."""
    import time

    from trainer.ml import loop

    real_evaluate = loop.evaluate

    def slow_evaluate(*args, **kwargs):
        time.sleep(1.0)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", slow_evaluate)


def test_time_left_counts_the_evaluations_to_come(
    tiny: Path, dataset: ChatDataset, tmp_path: Path, slow_evaluations: None
) -> None:
    """A quick run whose evaluations take most of its time: the page must not say "2 s left"
    with minutes to go."""
    model, tok = fresh(tiny, tmp_path)
    reports: list[Progress] = []
    train(config(), model, tok, dataset, tmp_path / "run", on_progress=reports.append)

    at_step_2 = next(r for r in reports if r.event == "step" and r.step == 2)
    assert at_step_2.eta_s >= 2 * 1.0  # the evaluations at steps 3 and 6 are still to come
    at_step_5 = next(r for r in reports if r.event == "step" and r.step == 5)
    assert 1.0 <= at_step_5.eta_s < at_step_2.eta_s


def test_a_resumed_run_counts_the_evaluations_to_come_at_once(
    tiny: Path, dataset: ChatDataset, tmp_path: Path, slow_evaluations: None
) -> None:
    """A resumed run does not evaluate at its start: it remembers what the last one took."""
    cfg = config(checkpoint_every_steps=3)
    steps: list[int] = []
    model, tok = fresh(tiny, tmp_path)
    train(cfg, model, tok, dataset, tmp_path / "run",
          on_progress=lambda p: steps.append(p.step), should_stop=lambda: 4 in steps)  # fmt: skip
    model, tok = fresh(tiny, tmp_path)
    reports: list[Progress] = []
    train(cfg, model, tok, dataset, tmp_path / "run", on_progress=reports.append)

    first = next(r for r in reports if r.event == "step")
    assert first.step == 4 and first.eta_s >= 1.0  # the evaluation at step 6 is still to come


def test_evaluations_left() -> None:
    assert evals_left(2, 6, 3, True) == 2  # at 3 and 6 (the last step is one of them)
    assert evals_left(3, 6, 3, True) == 1
    assert evals_left(2, 7, 3, True) == 3  # at 3, 6 and the end
    assert evals_left(2, 7, 0, True) == 1  # only at the end
    assert evals_left(7, 7, 3, True) == 0
    assert evals_left(2, 7, 3, False) == 0  # no validation data, no evaluations


def test_kill_and_resume_gives_identical_losses(
    tiny: Path, dataset: ChatDataset, tmp_path: Path
) -> None:
    # Tiny GPT-2 has dropout 0.1, so this also checks the RNG state travels with the checkpoint;
    # 4 windows a step over ~14 windows crosses epoch boundaries (new permutations) too.
    assert len(dataset.train) < 6 * 4
    cfg = config(checkpoint_every_steps=3)
    model, tok = fresh(tiny, tmp_path)
    straight = train(cfg, model, tok, dataset, tmp_path / "straight")

    class Killed(Exception):
        pass

    def kill_at_4(p: Progress) -> None:
        if p.step == 4:
            raise Killed

    model, tok = fresh(tiny, tmp_path)
    with pytest.raises(Killed):
        train(cfg, model, tok, dataset, tmp_path / "resumed", on_progress=kill_at_4)
    saved = torch.load(tmp_path / "resumed" / CHECKPOINT_DIR / STATE_FILE, weights_only=True)
    assert saved["state"]["step"] == 3

    model, tok = fresh(tiny, tmp_path)  # a new process would start from the base model too
    resumed = train(cfg, model, tok, dataset, tmp_path / "resumed")
    assert resumed.resumed_from_step == 3 and resumed.status == "completed"
    assert resumed.train_losses == pytest.approx(straight.train_losses, abs=1e-6, rel=0)
    assert [h["val_loss"] for h in resumed.history] == pytest.approx(
        [h["val_loss"] for h in straight.history], abs=1e-6, rel=0
    )


def test_cancel_keeps_last_checkpoint(tiny: Path, dataset: ChatDataset, tmp_path: Path) -> None:
    steps: list[int] = []
    model, tok = fresh(tiny, tmp_path)
    result = train(
        config(checkpoint_every_steps=2),
        model,
        tok,
        dataset,
        tmp_path / "run",
        on_progress=lambda p: steps.append(p.step),
        should_stop=lambda: bool(steps) and steps[-1] >= 3,
    )
    assert result.status == "cancelled" and result.step == 3
    assert result.checkpoint == tmp_path / "run" / CHECKPOINT_DIR
    saved = torch.load(result.checkpoint / STATE_FILE, weights_only=True)
    assert saved["state"]["step"] == 2
    assert json.loads((result.checkpoint / "training.json").read_text())["status"] == "running"


def test_a_cancelled_runs_history_ends_where_it_stopped(
    tiny: Path, dataset: ChatDataset, tmp_path: Path
) -> None:
    steps: list[int] = []
    model, tok = fresh(tiny, tmp_path)
    result = train(
        config(eval_every=4),
        model,
        tok,
        dataset,
        tmp_path / "run",
        on_progress=lambda p: steps.append(p.step),
        should_stop=lambda: bool(steps) and steps[-1] >= 3,
    )
    # Evaluations at steps 0 (the base model) only; the cancel at step 3 adds the training loss
    # of steps 1-3 without waiting for a validation loss, so the loss plot is not one point.
    assert [h["step"] for h in result.history] == [0, 3]
    last = result.history[-1]
    assert last["val_loss"] is None
    assert last["train_loss"] == pytest.approx(sum(result.train_losses) / 3)
    assert result.final_val_loss == result.history[0]["val_loss"] is not None


def test_cancel_before_any_checkpoint(tiny: Path, dataset: ChatDataset, tmp_path: Path) -> None:
    model, tok = fresh(tiny, tmp_path)
    result = train(config(), model, tok, dataset, tmp_path / "run", should_stop=lambda: True)
    assert result.status == "cancelled" and result.step == 0 and result.checkpoint is None


def test_finished_run_is_not_retrained(tiny: Path, dataset: ChatDataset, tmp_path: Path) -> None:
    model, tok = fresh(tiny, tmp_path)
    first = train(config(max_steps=2, eval_every=0), model, tok, dataset, tmp_path / "run")
    model, tok = fresh(tiny, tmp_path)
    again = train(config(max_steps=2, eval_every=0), model, tok, dataset, tmp_path / "run")
    assert again.resumed_from_step == 2 and again.train_losses == first.train_losses
    assert again.status == "completed"


def test_resume_refuses_other_settings(tiny: Path, dataset: ChatDataset, tmp_path: Path) -> None:
    model, tok = fresh(tiny, tmp_path)
    train(config(max_steps=1), model, tok, dataset, tmp_path / "run")
    model, tok = fresh(tiny, tmp_path)
    with pytest.raises(ValueError, match="lr"):
        train(config(max_steps=1, lr=1e-4), model, tok, dataset, tmp_path / "run")
    # Settings that do not change the numbers may differ.
    train(config(max_steps=1, eval_every=3, device="cpu"), model, tok, dataset, tmp_path / "run")


def test_interrupted_checkpoint_swap_is_repaired(tmp_path: Path) -> None:
    (tmp_path / f".old-{CHECKPOINT_DIR}").mkdir()
    (tmp_path / f".old-{CHECKPOINT_DIR}" / "x").write_text("good")
    (tmp_path / f".tmp-{CHECKPOINT_DIR}-abc").mkdir()
    assert checkpoint_path(tmp_path) == tmp_path / CHECKPOINT_DIR
    assert (tmp_path / CHECKPOINT_DIR / "x").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_DIR]
    assert checkpoint_path(tmp_path / "nothing-here") is None


def test_window_order_is_seeded_and_covers_each_epoch() -> None:
    order = WindowOrder(5, seed=1)
    first_epoch = order.take(0, 5)
    assert sorted(first_epoch) == list(range(5))
    assert sorted(order.take(5, 5)) == list(range(5))
    stream = order.take(0, 13)
    assert stream == WindowOrder(5, seed=1).take(0, 13)
    assert stream[3:9] == WindowOrder(5, seed=1).take(3, 6)  # resumable from any position
    assert stream != WindowOrder(5, seed=2).take(0, 13)


def test_lr_schedules() -> None:
    kw = {"total": 100, "warmup": 10, "min_ratio": 0.1}
    assert lr_factor(0, schedule="cosine", **kw) == pytest.approx(1 / 11)
    assert lr_factor(9, schedule="cosine", **kw) == pytest.approx(10 / 11)
    assert lr_factor(10, schedule="cosine", **kw) == pytest.approx(1.0)
    assert lr_factor(55, schedule="cosine", **kw) == pytest.approx(0.55)
    assert lr_factor(100, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_factor(55, schedule="linear", **kw) == pytest.approx(0.55)
    assert lr_factor(99, schedule="constant", **kw) == 1.0


def test_total_steps_from_epochs() -> None:
    assert TrainConfig(epochs=2, batch_size=4, grad_accum=2).total_steps(20) == 5
    assert TrainConfig(max_steps=7).total_steps(20) == 7


def test_rejects_windows_longer_than_config(tiny: Path, dataset: ChatDataset, tmp_path) -> None:
    model, tok = fresh(tiny, tmp_path)
    with pytest.raises(ValueError, match="window"):
        train(config(window_len=16), model, tok, dataset, tmp_path / "run")


def test_chunked_loss_matches_full_logits(tiny: Path, tmp_path: Path) -> None:
    from trainer.ml.lm_loss import chunked_lm_loss_sum, hidden_states, supports_chunked_loss
    from trainer.ml.loop import token_loss_sum

    model, _ = fresh(tiny, tmp_path)
    assert supports_chunked_loss(model)
    torch.manual_seed(0)
    ids = torch.randint(0, 50000, (3, 20))
    labels = ids.clone()
    labels[1, 12:] = -100  # padding
    full = token_loss_sum(model(input_ids=ids).logits, labels)
    full.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    chunked = chunked_lm_loss_sum(model, hidden_states(model, ids), labels, chunk=7)
    chunked.backward()
    assert chunked.item() == pytest.approx(full.item(), rel=1e-6)
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[name], rtol=1e-4, atol=1e-6), name
    with torch.no_grad():
        assert chunked_lm_loss_sum(model, hidden_states(model, ids), labels).item() == (
            pytest.approx(full.item(), rel=1e-6)
        )

    model.config.final_logit_softcapping = 30.0  # logits != lm_head(hidden): fall back
    assert not supports_chunked_loss(model)


def test_loop_same_losses_with_or_without_chunked_loss(
    tiny: Path, dataset: ChatDataset, tmp_path: Path
) -> None:
    runs = []
    for chunked in (True, False):
        model, tok = fresh(tiny, tmp_path)
        cfg = config(max_steps=3, eval_every=0, chunked_loss=chunked)
        runs.append(train(cfg, model, tok, dataset, tmp_path / f"run-{chunked}"))
    assert runs[0].train_losses == pytest.approx(runs[1].train_losses, rel=1e-4)
    assert runs[0].final_val_loss == pytest.approx(runs[1].final_val_loss, rel=1e-4)


def test_chunked_loss_where_it_pays_off(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    """Chunks on the CPU; on a GPU only when the full logits would crowd the card's memory."""
    from types import SimpleNamespace

    from trainer.ml.loop import use_chunked_loss

    model, _ = fresh(tiny, tmp_path)
    vocab = model.get_output_embeddings().weight.shape[0]
    cfg = config(batch_size=16, window_len=512)
    full_logits = 3 * 4 * 16 * 512 * vocab  # bytes: float32 logits, their grad, the loss's copy
    moments = 2 * 4 * sum(p.numel() for p in model.parameters())  # what AdamW will add
    card = SimpleNamespace(free=0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (card.free, 140 * 2**30))
    cuda = torch.device("cuda")

    assert use_chunked_loss(cfg, model, torch.device("cpu"))
    assert not use_chunked_loss(config(chunked_loss=False), model, torch.device("cpu"))
    card.free = 130 * 2**30  # an H200 with the model on it: room to spare, full logits
    assert not use_chunked_loss(cfg, model, cuda)
    card.free = moments + 3 * full_logits  # a small card: they would take a third of what's left
    assert use_chunked_loss(cfg, model, cuda)
    card.free = moments + 5 * full_logits  # a fifth: within the quarter, full logits
    assert not use_chunked_loss(cfg, model, cuda)
    model.config.final_logit_softcapping = 30.0  # not lm_head(hidden): never chunked
    assert not use_chunked_loss(cfg, model, torch.device("cpu"))
