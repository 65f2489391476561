"""The fine-tuning loop: plain PyTorch, readable top to bottom in :func:`train`.

One optimizer step = ``grad_accum`` micro-batches of ``batch_size`` packed windows. The loss is the
mean over every predicted (non-padding) token of the whole step, so gradient accumulation and
short final windows weigh tokens exactly as one big batch would.

The data order is a pure function of the seed: window indices come from one seeded permutation per
epoch, and the position in that stream is a single integer saved with each checkpoint. Together
with the optimizer, scheduler and RNG states this makes resuming exact: a run killed after a
checkpoint and restarted produces the same losses as one that never stopped.

Checkpoint layout (``out_dir/checkpoint/``, replaced atomically, always the last good one)::

    config.json, model.safetensors, generation_config.json   HF save_pretrained (float32)
    tokenizer.json, tokenizer_config.json, ...               HF save_pretrained
    joe_format.json                                          ChatFormat.save (speakers)
    training.json                                            status, step, loss history, summary
    trainer_state.pt                                         optimizer, scheduler, RNG, step,
                                                             data position (for resuming)

The folder is loadable by ``base_models.load_checkpoint`` for generation at any point.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.optim.lr_scheduler import LambdaLR
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trainer.ml.data import IGNORE_INDEX, ChatDataset, collate
from trainer.ml.lm_loss import chunked_lm_loss_sum, hidden_states, supports_chunked_loss

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.pt"
INFO_FILE = "training.json"
STATE_VERSION = 1


@dataclass
class TrainConfig:
    max_steps: int | None = None  # optimizer steps; None: derived from epochs
    epochs: float = 1.0
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-4
    min_lr_ratio: float = 0.1  # the schedule decays to lr * min_lr_ratio
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = 20
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    window_len: int = 256
    seed: int = 0
    eval_every: int = 50  # steps; 0: only at the start and the end
    checkpoint_every_steps: int = 0  # 0: time-based only
    checkpoint_every_s: float = 600.0
    progress_every_s: float = 5.0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", "mps"
    num_threads: int | None = None  # CPU threads for torch; None leaves the process default
    # Compute the output layer and loss in chunks of tokens (lm_loss.py): same result, a fraction
    # of the memory. Falls back to full logits for models whose logits are not lm_head(hidden),
    # and on a GPU with room for them (see use_chunked_loss). False: always full logits.
    chunked_loss: bool = True

    def total_steps(self, n_windows: int) -> int:
        if self.max_steps is not None:
            return self.max_steps
        per_step = self.batch_size * self.grad_accum
        return max(1, math.ceil(self.epochs * n_windows / per_step))


# Fields that do not change the numbers, so a resumed run may change them freely.
_RESUME_FREE = {
    "eval_every",
    "checkpoint_every_steps",
    "checkpoint_every_s",
    "progress_every_s",
    "device",
    "num_threads",
    "chunked_loss",
}


@dataclass
class Progress:
    """What the progress callback receives; ``asdict`` gives the JSON for the UI."""

    event: Literal["step", "eval", "checkpoint", "done", "cancelled"]
    step: int
    total_steps: int
    epoch: float
    lr: float
    train_loss: float | None  # mean over the steps since the previous report
    val_loss: float | None  # latest validation loss
    tokens_per_s: float
    eta_s: float | None
    elapsed_s: float
    history: list[dict[str, Any]]  # [{step, train_loss, val_loss}] at each evaluation


@dataclass
class TrainResult:
    status: Literal["completed", "cancelled"]
    step: int
    total_steps: int
    final_val_loss: float | None
    perplexity: float | None
    train_losses: list[float]  # one per optimizer step, from step 1
    history: list[dict[str, Any]]
    tokens_seen: int
    tokens_per_s: float
    elapsed_s: float
    checkpoint: Path | None
    resumed_from_step: int | None
    device: str


@dataclass
class _State:
    """Everything besides weights and optimizer that a resumed run needs."""

    step: int = 0
    position: int = 0  # windows consumed from the data-order stream
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    compute_s: float = 0.0  # time inside training steps, for the overall tokens/s
    eval_s: float = 0.0  # what the last evaluation took, for the ETA (a resume does not redo one)
    train_losses: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


class WindowOrder:
    """An endless, deterministic stream of training-window indices: one seeded permutation per
    epoch, so position p always means the same window for the same seed and dataset size."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm

    def take(self, position: int, count: int) -> list[int]:
        out: list[int] = []
        while len(out) < count:
            epoch, offset = divmod(position, self.n)
            chunk = self._permutation(epoch)[offset : offset + count - len(out)]
            out.extend(chunk.tolist())
            position += len(chunk)
        return out


def lr_factor(step: int, *, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Base-lr multiplier for optimizer step ``step`` (0-based): linear warmup, then decay."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress * (1.0 - min_ratio)
    return min_ratio + 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - min_ratio)


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# On a CUDA card the full logits take this share of the memory left free at most (after the
# model, and the optimizer's two float32 moments it will add), counting their gradient and the
# loss's float32 copies (about 3x the float32 logits, as measured on an H200), before the loop
# computes them in chunks instead.
FULL_LOGITS_MAX_SHARE = 0.25


def use_chunked_loss(config: TrainConfig, model: PreTrainedModel, device: torch.device) -> bool:
    """Whether this run computes its output layer and loss in chunks.

    On the CPU chunks are faster as well as smaller (benchmarks/RESULTS.md, "Training"). On a GPU
    one big logits product is faster (GPT-2 small on an H200, batch 16 x 512: 136k tokens/s
    against 105k chunked), so chunks are used only where the full logits would take much of the
    card's free memory: small cards, big models or vocabularies, big batches.
    """
    if not config.chunked_loss or not supports_chunked_loss(model):
        return False
    if device.type != "cuda":
        return True
    vocab = model.get_output_embeddings().weight.shape[0]
    full_logits = 3 * 4 * config.batch_size * config.window_len * vocab  # bytes
    free, _total = torch.cuda.mem_get_info(device)  # the model is on the card already
    moments = 2 * 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)
    return full_logits > FULL_LOGITS_MAX_SHARE * max(0, free - moments)


def autocast_for(device: torch.device) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """bf16 autocast on CUDA cards that support it; float32 elsewhere.

    No fp16: it needs loss scaling, and the cards without bf16 are too old to matter here. No bf16
    on CPU: without AMX it is slower than float32 and it costs accuracy.
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy over non-ignored labels.

    Shifting the labels left (rather than slicing the logits) avoids copying the large
    batch x length x vocab logits tensor.
    """
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )


def count_targets(labels: torch.Tensor) -> int:
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


def loss_sum(
    model: PreTrainedModel, input_ids: torch.Tensor, labels: torch.Tensor, chunked: bool
) -> torch.Tensor:
    """Summed next-token loss of one batch, through chunked_lm_loss_sum or the model's logits.

    Either way the batch x length x vocab logits are gone before the backward pass; with the
    plain path they are dropped on return, which the backward pass does not need them for
    (log-softmax keeps its own output).
    """
    if chunked:
        return chunked_lm_loss_sum(model, hidden_states(model, input_ids), labels)
    logits = model(input_ids=input_ids, use_cache=False).logits
    return token_loss_sum(logits, labels)


@torch.no_grad()
def evaluate(
    model: PreTrainedModel,
    windows: list[list[int]],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    chunked: bool = False,
) -> float | None:
    """Mean per-token validation loss, in a fixed order, without gradients or dropout."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        batch = collate(windows[i : i + batch_size], pad_id)
        labels = batch["labels"].to(device)
        with autocast():
            total += float(loss_sum(model, batch["input_ids"].to(device), labels, chunked))
        count += count_targets(labels)
    model.train(was_training)
    return total / count if count else None


def make_optimizer(
    model: PreTrainedModel, config: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases and norm gains), as in nanoGPT.

    The fused kernel (CPU and CUDA) updates all parameters in one pass; the default on CPU is a
    per-tensor Python loop, which is a visible share of a step for small models.
    """
    params = [p for p in model.parameters() if p.requires_grad]  # tied weights appear once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), eps=1e-8, fused=fused)


# --- checkpoints ---------------------------------------------------------------------------------


def checkpoint_path(out_dir: Path) -> Path | None:
    """The last good checkpoint in out_dir, repairing an interrupted swap; None if there is none."""
    out_dir = Path(out_dir)
    final, old = out_dir / CHECKPOINT_DIR, out_dir / f".old-{CHECKPOINT_DIR}"
    if not final.is_dir() and old.is_dir():
        old.rename(final)  # killed between the two renames of _swap_in
    for stray in out_dir.glob(f".tmp-{CHECKPOINT_DIR}-*"):
        shutil.rmtree(stray, ignore_errors=True)  # a save that never finished
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    return final if final.is_dir() else None


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace final with tmp. A directory cannot be renamed over a non-empty one, so move the old
    one aside first; checkpoint_path() undoes a kill between the two renames."""
    old = final.parent / f".old-{final.name}"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(
    out_dir: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: ChatDataset,
    trainer_state: dict[str, Any],
    info: dict[str, Any],
) -> Path:
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{CHECKPOINT_DIR}-", dir=out_dir))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        dataset.chat_format.save(tmp)
        torch.save(trainer_state, tmp / STATE_FILE)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=1))
        tmp.chmod(0o750)  # mkdtemp: 0700; the web process reads it (same user or group)
        _swap_in(tmp, out_dir / CHECKPOINT_DIR)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / CHECKPOINT_DIR


def _load_weights(model: PreTrainedModel, folder: Path) -> None:
    files = sorted(folder.glob("*.safetensors"))
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(f))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"checkpoint has weights the model lacks: {unexpected[:5]}")
    # save_pretrained stores tied weights once (lm_head = embeddings); anything else is an error.
    loaded = {p.data_ptr() for n, p in model.state_dict().items() if n in state}
    really_missing = [n for n in missing if model.state_dict()[n].data_ptr() not in loaded]
    if really_missing:
        raise ValueError(f"checkpoint lacks weights: {really_missing[:5]}")


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


# --- the loop ------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: ChatDataset,
    out_dir: Path,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on ``dataset``, checkpointing into ``out_dir``; resumes if it can."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not dataset.train:
        raise ValueError("the dataset has no training windows")
    if dataset.window_len > config.window_len:
        raise ValueError(f"dataset windows ({dataset.window_len}) exceed {config.window_len=}")
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions is not None and config.window_len > max_positions:
        raise ValueError(f"{config.window_len=} exceeds the model's {max_positions} positions")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)

    device = pick_device(config.device)
    autocast = autocast_for(device)
    model.to(device)
    model.train()
    total_steps = config.total_steps(len(dataset.train))
    optimizer = make_optimizer(model, config, device)
    scheduler = LambdaLR(
        optimizer,
        partial(
            lr_factor,
            total=total_steps,
            warmup=config.warmup_steps,
            schedule=config.schedule,
            min_ratio=config.min_lr_ratio,
        ),
    )
    chunked = use_chunked_loss(config, model, device)
    order = WindowOrder(len(dataset.train), config.seed)
    fingerprint = dataset.fingerprint()
    micro_bs = config.batch_size
    per_step = config.batch_size * config.grad_accum

    # Fresh start or resume from the last good checkpoint.
    state = _State()
    resumed_from: int | None = None
    ckpt = checkpoint_path(out_dir)
    if ckpt is not None and (ckpt / STATE_FILE).is_file():
        saved = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
        _check_resumable(saved, config, fingerprint, total_steps)
        _load_weights(model, ckpt)
        optimizer.load_state_dict(saved["optimizer"])  # moves state to the params' device
        scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"], device)
        state = _State(**saved["state"])
        resumed_from = state.step
    else:
        ckpt = None
        torch.manual_seed(config.seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(config.seed)

    def snapshot() -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "state": asdict(state),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(device),
            "config": asdict(config),
            "total_steps": total_steps,
            "data_fingerprint": fingerprint,
        }

    def info(status: str) -> dict[str, Any]:
        return {
            "status": status,
            "step": state.step,
            "total_steps": total_steps,
            "tokens_seen": state.tokens_seen,
            "history": state.history,
            "config": asdict(config),
            "dataset": dataset.summary,
        }

    def checkpoint() -> Path:
        return save_checkpoint(out_dir, model, tokenizer, dataset, snapshot(), info("running"))

    def val_loss() -> float | None:
        return evaluate(model, dataset.val, dataset.pad_id, micro_bs, device, autocast, chunked)

    # Throughput is measured on training compute only (not evals or saves); the ETA adds the
    # evaluations still to come, at the time the last one took (on a small run they can be most
    # of the time left).
    window_tokens, window_time, window_losses = 0, 0.0, []
    step_time_ewm: float | None = None
    last_report = last_ckpt = time.monotonic()
    run_start = time.monotonic() - state.elapsed_s

    def report(event: str) -> None:
        nonlocal window_tokens, window_time, window_losses, last_report
        if on_progress is None:
            return
        latest_val = last_val_loss(state.history)
        remaining = total_steps - state.step
        on_progress(
            Progress(
                event=event,  # type: ignore[arg-type]
                step=state.step,
                total_steps=total_steps,
                epoch=state.position / len(dataset.train),
                lr=scheduler.get_last_lr()[0],
                train_loss=sum(window_losses) / len(window_losses) if window_losses else None,
                val_loss=latest_val,
                tokens_per_s=window_tokens / window_time if window_time > 0 else 0.0,
                eta_s=(
                    remaining * step_time_ewm
                    + evals_left(state.step, total_steps, config.eval_every, bool(dataset.val))
                    * state.eval_s
                    if step_time_ewm is not None
                    else None
                ),
                elapsed_s=time.monotonic() - run_start,
                history=list(state.history),
            )
        )
        window_tokens, window_time, window_losses = 0, 0.0, []
        last_report = time.monotonic()

    def eval_and_record() -> None:
        since = state.history[-1]["step"] if state.history else 0
        recent = state.train_losses[since:]
        t0 = time.perf_counter()
        loss = val_loss()
        state.eval_s = time.perf_counter() - t0
        state.history.append(
            {
                "step": state.step,
                "train_loss": sum(recent) / len(recent) if recent else None,
                "val_loss": loss,
            }
        )
        report("eval")

    if resumed_from is None and dataset.val:
        eval_and_record()  # the base model's validation loss: the line to beat

    status: Literal["completed", "cancelled"] = "completed"
    while state.step < total_steps:
        if should_stop is not None and should_stop():
            status = "cancelled"  # the last checkpoint stays as it is
            break
        t0 = time.perf_counter()

        # Fetch the whole step first: the loss is normalised by the step's total target count.
        indices = order.take(state.position, per_step)
        batches = [
            collate([dataset.train[i] for i in indices[k : k + micro_bs]], dataset.pad_id)
            for k in range(0, per_step, micro_bs)
        ]
        n_targets = sum(count_targets(b["labels"]) for b in batches)

        step_loss = torch.zeros((), device=device)
        for batch in batches:
            input_ids = batch["input_ids"].to(device, non_blocking=True)
            labels = batch["labels"].to(device, non_blocking=True)
            with autocast():
                loss = loss_sum(model, input_ids, labels, chunked) / max(1, n_targets)
            loss.backward()
            step_loss += loss.detach()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        loss_value = float(step_loss)  # also syncs the device, so the timing below is real
        n_tokens = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in batches)
        dt = time.perf_counter() - t0
        state.step += 1
        state.position += per_step
        state.tokens_seen += n_tokens
        state.compute_s += dt
        state.train_losses.append(loss_value)
        state.elapsed_s = time.monotonic() - run_start
        window_tokens += n_tokens
        window_time += dt
        window_losses.append(loss_value)
        # Skip the first step in the ETA: it pays one-off allocation costs.
        if state.step > 1 or resumed_from is not None:
            step_time_ewm = dt if step_time_ewm is None else 0.9 * step_time_ewm + 0.1 * dt

        done = state.step >= total_steps
        if dataset.val and (done or (config.eval_every and state.step % config.eval_every == 0)):
            eval_and_record()
        elif time.monotonic() - last_report >= config.progress_every_s:
            report("step")
        if not done and (
            (config.checkpoint_every_steps and state.step % config.checkpoint_every_steps == 0)
            or time.monotonic() - last_ckpt >= config.checkpoint_every_s
        ):
            ckpt = checkpoint()
            last_ckpt = time.monotonic()
            report("checkpoint")

    if status == "completed" and (resumed_from is None or resumed_from < total_steps):
        state.elapsed_s = time.monotonic() - run_start
        ckpt = save_checkpoint(out_dir, model, tokenizer, dataset, snapshot(), info("completed"))
    if status == "cancelled":
        since = state.history[-1]["step"] if state.history else 0
        recent = state.train_losses[since:]
        if recent:  # the training loss since the last evaluation, so the plot shows the run's end
            state.history.append(
                {"step": state.step, "train_loss": sum(recent) / len(recent), "val_loss": None}
            )
    final_val = last_val_loss(state.history)
    report("done" if status == "completed" else "cancelled")
    return TrainResult(
        status=status,
        step=state.step,
        total_steps=total_steps,
        final_val_loss=final_val,
        perplexity=math.exp(min(final_val, 50.0)) if final_val is not None else None,
        train_losses=list(state.train_losses),
        history=list(state.history),
        tokens_seen=state.tokens_seen,
        tokens_per_s=state.tokens_seen / state.compute_s if state.compute_s else 0.0,
        elapsed_s=time.monotonic() - run_start,
        checkpoint=ckpt,
        resumed_from_step=resumed_from,
        device=str(device),
    )


def evals_left(step: int, total_steps: int, eval_every: int, has_val: bool) -> int:
    """The evaluations the loop still runs after ``step``: every ``eval_every`` steps, and one
    at the end (the same one when the last step is a multiple)."""
    if not has_val or step >= total_steps:
        return 0
    periodic = total_steps // eval_every - step // eval_every if eval_every else 0
    return periodic + (0 if eval_every and total_steps % eval_every == 0 else 1)


def _check_resumable(
    saved: dict[str, Any], config: TrainConfig, fingerprint: str, total_steps: int
) -> None:
    """Refuse to resume into a run that would not continue the same computation."""
    if saved.get("version") != STATE_VERSION:
        raise ValueError(f"checkpoint state version {saved.get('version')} is not supported")
    if saved["data_fingerprint"] != fingerprint:
        raise ValueError("the checkpoint was trained on different data; use a new out_dir")
    now = {k: v for k, v in asdict(config).items() if k not in _RESUME_FREE}
    then = {k: v for k, v in saved["config"].items() if k not in _RESUME_FREE}
    changed = sorted(k for k in now if now[k] != then.get(k))
    if changed or saved["total_steps"] != total_steps:
        raise ValueError(f"the checkpoint was trained with different settings: {changed}")


def last_val_loss(history: list[dict[str, Any]]) -> float | None:
    """The latest evaluation's validation loss (a cancel's last point has none)."""
    return next((h["val_loss"] for h in reversed(history) if h.get("val_loss") is not None), None)
