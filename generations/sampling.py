"""Sampling from a fine-tuned checkpoint: single messages in bulk, whole conversations, streaming.

Our own decoding loop over the model's forward pass with a KV cache, not ``model.generate``,
because the gallery needs four things at once that ``generate`` gives only partly:

* **per-sequence stopping** at ``<|eom|>``: a row that has ended is masked as finished and its text
  is what it produced up to the marker; other rows in the batch continue. Nothing is cut out of a
  longer text afterwards.
* **logit masking by state**: inside a message every special token but ``<|eom|>`` is banned (so no
  marker, other speaker or stray base-model special token reaches the text); after ``<|eom|>`` in a
  conversation only the allowed speakers' tokens or ``<|eoc|>`` may follow, so an opted-out friend
  is never chosen, and every friend picked gets a line when there is room for one each.
* **per-row randomness**: every row draws its uniforms from its own ``torch.Generator`` seeded with
  that snippet's own seed and samples by inverse CDF over the filtered distribution; no row's
  random numbers depend on which other rows share its batch.
* **streaming** via ``on_token(index, text_so_far)``.

Reproducibility. Same seed, same text: what a row samples depends only on its seed and its logits.
The logits of a row computed inside a padded batch are *not* bit-identical to the same row computed
alone (measured on CPU: differences of ~1e-5 for SmolLM2-135M, float32), because matrix-multiply
kernels and attention paths depend on tensor shapes; a rare near-tie can flip a sampled token. They
are bit-identical when the batch has the same shape, whatever the other rows contain (verified).
So every result records a ``Replay`` - batch size, padded prompt width and row - and
``Generator.regenerate(message)`` re-runs exactly that shape with copies of the one request: the
same text, token for token, on the same device/dtype/thread count. To make that hold:

* every prompt is left-padded by at least one pad column, so the attention mask is never all ones
  (transformers drops an all-ones mask and takes a different SDPA path);
* finished rows are never pruned from the batch (pruning changes the shape at a time that depends
  on the other rows). The cost: a batch runs until its longest row ends; buckets of similar prompt
  length keep padding low but not output-length variance.

A message generated with ``batch_size=1`` regenerates exactly from ``(params, seed)`` alone.

No Django here: this must run on a GPU box with only torch + transformers.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.ml.chat_format import CONV, EOC, EOM, ChatFormat, speaker_token

MAX_SEED = 2**63 - 1  # fits a signed 64-bit database column
_MARKER_RE = re.compile(r"<\|(?:conv|eom|eoc|pad|spk:[^|<>]*)\|>")

OnToken = Callable[[int, str], None]
OnProgress = Callable[[int, int], None]
ShouldStop = Callable[[], bool]


@dataclass(frozen=True)
class SamplingParams:
    """Sampling controls. ``temperature <= 0`` is greedy; ``top_k = 0`` / ``top_p = 1`` disable
    those filters. ``seed`` is a base seed: request ``i`` of a call gets ``derive_seed(seed, i)``
    (random per request when None). ``max_new_tokens`` caps one message (per line in a
    conversation)."""

    temperature: float = 0.9
    top_p: float = 0.95
    top_k: int = 50
    max_new_tokens: int = 60
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not math.isfinite(self.temperature):
            raise ValueError(f"temperature must be finite, got {self.temperature}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingParams:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Replay:
    """The batch shape a row was computed in; see the module docstring."""

    batch_size: int
    prompt_width: int
    row: int


@dataclass(frozen=True)
class GeneratedMessage:
    index: int  # position in the request list
    speaker: str
    opening: str
    text: str  # the whole message (opening + completion), no markers
    completion: str  # what the model added after the opening
    seed: int
    params: SamplingParams
    n_tokens: int  # generated tokens, the closing <|eom|> included when there was one
    stop_reason: str  # "eom" | "length" (max_new_tokens) | "context" (model's window full)
    replay: Replay

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratedMessage:
        data = dict(data)
        data["params"] = SamplingParams.from_dict(data["params"])
        data["replay"] = Replay(**data["replay"])
        return cls(**data)


@dataclass(frozen=True)
class GeneratedConversation:
    """Lines of a generated session; iterates as ``(slug, text)`` pairs."""

    lines: list[tuple[str, str]]
    seed: int
    params: SamplingParams
    stop_reason: str  # "eoc" | "max_lines" | "context" | "cancelled"

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, i: int) -> tuple[str, str]:
        return self.lines[i]


def derive_seed(base: int, index: int) -> int:
    """Seed of request ``index`` under base seed ``base`` (SplitMix64 finaliser, 63 bits)."""
    z = (base * 0x9E3779B97F4A7C15 + (index + 1) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return (z ^ (z >> 31)) & MAX_SEED


def sample_next(logits: torch.Tensor, params: SamplingParams, u: torch.Tensor) -> torch.Tensor:
    """One token per row of ``logits`` (B, V) by inverse CDF with uniforms ``u`` (B,) in [0, 1).

    Same semantics and order as transformers' processors: temperature scales the logits; top-k
    keeps the k largest; top-p then keeps the smallest prefix of the sorted (top-k renormalised)
    distribution whose mass reaches p, the top token always kept. Masked (-inf) logits are never
    picked. Deterministic given its inputs.

    Cost: top-k is a ``topk``; top-p without top-k looks at the top 256 first and sorts the whole
    vocabulary only for a row whose nucleus is wider than that; with neither, no sort at all.
    """
    logits = logits.float()
    if params.temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / params.temperature
    vocab = logits.shape[-1]
    order: torch.Tensor | None = None
    if 0 < params.top_k < vocab:
        values, order = torch.topk(logits, params.top_k, dim=-1, sorted=True)
        log_norm = torch.logsumexp(values, dim=-1, keepdim=True)
    elif params.top_p < 1.0:
        log_norm = torch.logsumexp(logits, dim=-1, keepdim=True)
        head = min(vocab, 256)
        values, order = torch.topk(logits, head, dim=-1, sorted=True)
        head_mass = torch.exp((values - log_norm).double()).sum(dim=-1)
        if head < vocab and not bool((head_mass >= params.top_p).all()):
            values, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    else:
        values = logits
        log_norm = torch.logsumexp(logits, dim=-1, keepdim=True)
    probs = torch.exp((values - log_norm).double())
    if params.top_p < 1.0:
        before = torch.cumsum(probs, dim=-1) - probs  # mass strictly above each token
        probs = probs.masked_fill(before >= params.top_p, 0.0)
    cdf = torch.cumsum(probs, dim=-1)
    target = u.to(device=cdf.device, dtype=torch.float64).unsqueeze(-1) * cdf[:, -1:]
    # The first index whose cdf exceeds the target; it always has mass. Float edge (target equal
    # to the total): fall back to the last index with mass.
    pick = (cdf <= target).sum(dim=-1, keepdim=True)
    positions = torch.arange(probs.shape[-1], device=probs.device)
    last = torch.where(probs > 0, positions, -1).max(dim=-1, keepdim=True).values
    pick = torch.where(pick >= probs.shape[-1], last, pick)
    if order is None:
        return pick.squeeze(-1)
    return order.gather(-1, pick).squeeze(-1)


class _Row:
    """Decoding state of one sequence; subclasses decide what may come next and when it ends."""

    def __init__(self, index: int, prompt: list[int], seed: int) -> None:
        self.index = index
        self.prompt = prompt
        self.seed = seed
        self.rng = torch.Generator(device="cpu")
        self.rng.manual_seed(seed)
        self.done = False
        self.stop_reason = ""

    def uniform(self) -> float:
        return float(torch.rand(1, generator=self.rng, dtype=torch.float64))

    def allowed(self) -> torch.Tensor | int:
        """A (V,) bool mask of allowed tokens, or a token id forced without sampling."""
        raise NotImplementedError

    def push(self, token: int) -> None:
        raise NotImplementedError

    def stop(self, reason: str) -> None:
        self.done, self.stop_reason = True, reason


class _MessageRow(_Row):
    def __init__(self, gen: Generator, index: int, speaker: str, opening: str, seed: int, cap: int):
        self.speaker, self.opening = speaker, opening
        prompt = gen.encode(gen.chat_format.prompt(speaker, opening))
        super().__init__(index, prompt, seed)
        self.gen = gen
        self.cap = cap
        self.tokens: list[int] = []
        # The message text starts after the speaker token: decode the opening's ids with the
        # completion so word pieces join exactly as the model produced them.
        spk = gen.token_id(speaker_token(speaker))
        self.text_prefix = prompt[prompt.index(spk) + 1 :]

    def allowed(self) -> torch.Tensor | int:
        return self.gen.in_message_mask

    def push(self, token: int) -> None:
        self.tokens.append(token)
        if token == self.gen.eom_id:
            self.stop("eom")
        elif len(self.tokens) >= self.cap:
            self.stop("length")

    def text(self) -> str:
        body = [t for t in self.tokens if t != self.gen.eom_id]
        return self.gen.decode(self.text_prefix + body)

    def result(self, params: SamplingParams, replay: Replay) -> GeneratedMessage:
        text = self.text()
        completion = self.gen.decode([t for t in self.tokens if t != self.gen.eom_id])
        return GeneratedMessage(
            index=self.index,
            speaker=self.speaker,
            opening=self.opening,
            text=text,
            completion=completion,
            seed=self.seed,
            params=params,
            n_tokens=len(self.tokens),
            stop_reason=self.stop_reason,
            replay=replay,
        )


class _ConversationRow(_Row):
    def __init__(
        self,
        gen: Generator,
        index: int,
        seed: int,
        allowed_speakers: set[str],
        max_lines: int,
        cap: int,
        opening: tuple[str, str] | None,
    ) -> None:
        text = gen.chat_format.prompt(*opening) if opening else gen.chat_format.prompt(None)
        prompt = gen.encode(text)
        super().__init__(index, prompt, seed)
        self.gen = gen
        self.max_lines = max_lines
        self.cap = cap
        self.speakers = frozenset(allowed_speakers)
        self.masks: dict[tuple[frozenset[str], bool], torch.Tensor] = {}
        self.lines: list[tuple[str, list[int]]] = []
        self.in_message = False
        if opening:
            spk = gen.token_id(speaker_token(opening[0]))
            self.lines.append((opening[0], prompt[prompt.index(spk) + 1 :]))
            self.in_message = True
        self.line_tokens = 0

    def allowed(self) -> torch.Tensor | int:
        if self.in_message:
            return self.gen.eom_id if self.line_tokens >= self.cap else self.gen.in_message_mask
        return self.next_speaker_mask()

    def next_speaker_mask(self) -> torch.Tensor:
        """Who may speak next (or ``<|eoc|>``, never first). With room for a line each, every
        friend picked gets one: until all have spoken the conversation may not end, and once
        the lines left are no more than the friends not heard yet, only they may speak."""
        unheard = self.speakers - {slug for slug, _ in self.lines}
        if not unheard or self.max_lines < len(self.speakers):
            key = (self.speakers, bool(self.lines))
        elif self.max_lines - len(self.lines) <= len(unheard):
            key = (unheard, False)
        else:
            key = (self.speakers, False)
        if key not in self.masks:
            self.masks[key] = self.gen.speaker_mask(set(key[0]), allow_eoc=key[1])
        return self.masks[key]

    def push(self, token: int) -> None:
        gen = self.gen
        if not self.in_message:
            if token == gen.eoc_id:
                self.stop("eoc")
                return
            self.lines.append((gen.speaker_of[token], []))
            self.in_message = True
            self.line_tokens = 0
            return
        if token == gen.eom_id:
            self.in_message = False
            if len(self.lines) >= self.max_lines:
                self.stop("max_lines")
            return
        self.lines[-1][1].append(token)
        self.line_tokens += 1

    def current_line(self) -> tuple[int, str, str]:
        """(line index, speaker slug, text so far) of the line being written."""
        if not self.lines:
            return -1, "", ""
        slug, ids = self.lines[-1]
        return len(self.lines) - 1, slug, self.gen.decode(ids)

    def decoded_lines(self) -> list[tuple[str, str]]:
        return [(slug, self.gen.decode(ids)) for slug, ids in self.lines]


class Generator:
    """A loaded checkpoint and the decoding loop over it."""

    def __init__(self, model: Any, tokenizer: Any, chat_format: ChatFormat) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.chat_format = chat_format
        self.device = next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id
        self.eom_id = self.token_id(EOM)
        self.eoc_id = self.token_id(EOC)
        self.conv_id = self.token_id(CONV)
        self.speaker_ids = {s: self.token_id(speaker_token(s)) for s in chat_format.speakers}
        self.speaker_of = {i: s for s, i in self.speaker_ids.items()}
        vocab = model.get_output_embeddings().weight.shape[0]
        self.vocab_size = vocab
        # Inside a message: everything but real text tokens and <|eom|> is banned - our markers,
        # the base model's own special tokens (<|endoftext|>, <|im_start|> ...), and embedding rows
        # beyond the tokenizer (padding of the matrix).
        special = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
        special |= set(range(len(tokenizer), vocab))
        special.discard(self.eom_id)
        mask = torch.ones(vocab, dtype=torch.bool)
        mask[sorted(i for i in special if i < vocab)] = False
        self.in_message_mask = mask.to(self.device)
        cfg = model.config
        self.max_context = getattr(cfg, "max_position_embeddings", None) or getattr(
            cfg, "n_positions", None
        )

    # ---------------------------------------------------------------- loading, tokens
    @classmethod
    def load(
        cls, checkpoint_folder: str | Path, device: str = "auto", dtype: torch.dtype | None = None
    ) -> Generator:
        """Load a training checkpoint folder. ``device="auto"``: CUDA if present, else CPU;
        ``dtype`` defaults to bfloat16 on CUDA (when supported) and float32 on CPU."""
        from trainer.ml.base_models import load_checkpoint  # torch/transformers only, no Django

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype is None:
            cuda_bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
            dtype = torch.bfloat16 if cuda_bf16 else torch.float32
        model, tokenizer, chat_format = load_checkpoint(
            checkpoint_folder, device=device, dtype=dtype
        )
        return cls(model, tokenizer, chat_format)

    def token_id(self, token: str) -> int:
        tid = self.tokenizer.convert_tokens_to_ids(token)
        if tid is None or tid == self.tokenizer.unk_token_id:
            raise ValueError(f"checkpoint tokenizer lacks {token!r}")
        return int(tid)

    def encode(self, text: str) -> list[int]:
        # No BOS: a session starts with <|conv|>, exactly as training writes it.
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        text = self.tokenizer.decode(list(ids), skip_special_tokens=True)
        # Token masking keeps marker tokens out; this removes the same markers spelt out of
        # ordinary pieces ("<", "|", "eom" ...), which the model could in principle write.
        return _MARKER_RE.sub("", text).strip()

    def speaker_mask(self, allowed: set[str], *, allow_eoc: bool) -> torch.Tensor:
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        for slug in allowed:
            mask[self.speaker_ids[slug]] = True
        if allow_eoc:
            mask[self.eoc_id] = True
        return mask.to(self.device)

    # ---------------------------------------------------------------- public API
    def generate_messages(
        self,
        requests: Sequence[tuple[str, str]],
        params: SamplingParams,
        *,
        seeds: Sequence[int] | None = None,
        banned_speakers: set[str] | frozenset[str] = frozenset(),
        batch_size: int = 32,
        on_progress: OnProgress | None = None,
        should_stop: ShouldStop | None = None,
        on_token: OnToken | None = None,
    ) -> list[GeneratedMessage]:
        """One message per ``(speaker_slug, opening_text)`` request, in request order.

        Requests are bucketed by prompt length into batches of ``batch_size``. ``seeds`` gives each
        request's seed (else derived from ``params.seed``, else random). ``on_progress(done,
        total)`` runs after each batch; ``should_stop()`` is polled every step and, when true, ends
        generation: only the messages that had finished are returned. ``on_token(index, text)``
        streams each row's text so far (index = request position).
        """
        for slug, _ in requests:
            if slug not in self.speaker_ids:
                raise ValueError(f"unknown speaker {slug!r}")
            if slug in banned_speakers:
                raise ValueError(f"speaker {slug!r} has opted out of generation")
        if seeds is None:
            seeds = [self._seed_for(params, i) for i in range(len(requests))]
        if len(seeds) != len(requests):
            raise ValueError("one seed per request")
        rows = [
            _MessageRow(self, i, slug, opening, int(seed), params.max_new_tokens)
            for i, ((slug, opening), seed) in enumerate(zip(requests, seeds, strict=True))
        ]
        # Bucket by prompt length (stable: ties keep request order), so padding stays small.
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].prompt))
        results: list[GeneratedMessage] = []
        done = 0
        for start in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[start : start + batch_size]]
            width = max(len(r.prompt) for r in batch) + 1
            cancelled = self._decode(batch, params, width, should_stop, on_token)
            for pos, row in enumerate(batch):
                if row.done:
                    results.append(row.result(params, Replay(len(batch), width, pos)))
            done += len(batch)
            if on_progress is not None:
                on_progress(done, len(rows))
            if cancelled:
                break
        results.sort(key=lambda m: m.index)
        return results

    def regenerate(self, message: GeneratedMessage) -> GeneratedMessage:
        """Re-run one stored message bit-exactly (same device/dtype/threads): its batch shape is
        rebuilt from ``message.replay`` with copies of the request in every row."""
        rp = message.replay
        if rp.batch_size < 1 or not 0 <= rp.row < rp.batch_size:
            raise ValueError(f"no replayable batch shape recorded: {rp}")
        rows = [
            _MessageRow(
                self,
                message.index,
                message.speaker,
                message.opening,
                message.seed,
                message.params.max_new_tokens,
            )
            for _ in range(rp.batch_size)
        ]
        if len(rows[0].prompt) >= rp.prompt_width:
            raise ValueError("replay width is narrower than the prompt")
        self._decode(rows, message.params, rp.prompt_width, None, None)
        return rows[rp.row].result(message.params, rp)

    def generate_conversation(
        self,
        params: SamplingParams,
        *,
        speakers_allowed: set[str] | Sequence[str],
        max_lines: int = 8,
        opening: tuple[str, str] | None = None,
        seed: int | None = None,
        on_token: OnToken | None = None,
        on_speaker: Callable[[int, str], None] | None = None,
        should_stop: ShouldStop | None = None,
    ) -> GeneratedConversation:
        """A session from ``<|conv|>``: the model picks each speaker among ``speakers_allowed``
        (other speaker tokens are masked, so an opted-out friend never appears) or ends with
        ``<|eoc|>``; at most ``max_lines`` lines of at most ``params.max_new_tokens`` tokens (a
        line at the cap gets ``<|eom|>`` forced). ``opening=(slug, text)`` starts the first line.
        ``on_speaker(line_index, slug)`` announces each line's speaker and ``on_token(line_index,
        line_text_so_far)`` streams its text. Seed: ``seed``, else
        ``derive_seed(params.seed, 0)``, else random."""
        allowed = set(speakers_allowed)
        unknown = allowed - set(self.speaker_ids)
        if unknown:
            raise ValueError(f"unknown speakers {sorted(unknown)}")
        if not allowed:
            raise ValueError("no speaker allowed")
        if opening is not None and opening[0] not in allowed:
            raise ValueError(f"opening speaker {opening[0]!r} is not allowed")
        if max_lines < 1:
            raise ValueError("max_lines must be >= 1")
        seed = self._seed_for(params, 0) if seed is None else int(seed)
        row = _ConversationRow(self, 0, seed, allowed, max_lines, params.max_new_tokens, opening)
        stream = None
        if on_token is not None or on_speaker is not None:
            announced = -1 if opening is None else 0
            if opening is not None and on_speaker is not None:
                on_speaker(0, opening[0])

            def stream(_index: int, _text: str) -> None:
                nonlocal announced
                line, slug, text = row.current_line()
                if line < 0:
                    return
                if line > announced:
                    announced = line
                    if on_speaker is not None:
                        on_speaker(line, slug)
                    return  # the speaker token itself adds no text
                if on_token is not None and row.in_message:
                    on_token(line, text)

        cancelled = self._decode([row], params, len(row.prompt) + 1, should_stop, stream)
        lines = row.decoded_lines()
        if row.in_message and lines:  # cut off mid-line (context full or cancelled)
            lines = lines[:-1]
        reason = "cancelled" if cancelled else row.stop_reason
        return GeneratedConversation(lines=lines, seed=seed, params=params, stop_reason=reason)

    # ---------------------------------------------------------------- the loop
    @staticmethod
    def _seed_for(params: SamplingParams, index: int) -> int:
        if params.seed is None:
            return secrets.randbits(63)
        return derive_seed(params.seed, index)

    @torch.inference_mode()
    def _decode(
        self,
        rows: Sequence[_Row],
        params: SamplingParams,
        width: int,
        should_stop: ShouldStop | None,
        on_token: OnToken | None,
    ) -> bool:
        """Run ``rows`` as one left-padded batch until every row is done; True if cancelled."""
        batch = len(rows)
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for b, row in enumerate(rows):
            n = len(row.prompt)
            ids[b, width - n :] = torch.tensor(row.prompt, dtype=torch.long)
            mask[b, width - n :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1
        )
        cache, logits = out.cache, out.logits[:, -1]
        step = 0
        while True:
            active = [b for b, row in enumerate(rows) if not row.done]
            if not active:
                return False
            if should_stop is not None and should_stop():
                return True
            if self.max_context and width + step >= self.max_context:
                for b in active:
                    rows[b].stop("context")
                return False
            next_ids = self._choose(rows, active, logits, params)
            for b in active:
                rows[b].push(int(next_ids[b]))
                if on_token is not None:
                    row = rows[b]
                    on_token(row.index, row.text() if isinstance(row, _MessageRow) else "")
            if all(row.done for row in rows):
                return False
            # Finished rows keep a slot (same shape for replay) and are fed padding.
            mask = torch.cat(
                [mask, torch.ones((batch, 1), dtype=mask.dtype, device=mask.device)], 1
            )
            pos = pos[:, -1:] + 1
            out = self.model(
                input_ids=next_ids.unsqueeze(-1).to(self.device),
                attention_mask=mask,
                position_ids=pos,
                cache=cache,
                use_cache=True,
            )
            cache, logits = out.cache, out.logits[:, -1]
            step += 1

    def _choose(
        self, rows: Sequence[_Row], active: list[int], logits: torch.Tensor, params: SamplingParams
    ) -> torch.Tensor:
        """Next token for every row (padding for finished rows), with state masks applied."""
        next_ids = torch.full((len(rows),), self.pad_id, dtype=torch.long)
        sample_rows, masks, forced = [], [], {}
        for b in active:
            allowed = rows[b].allowed()
            if isinstance(allowed, int):
                forced[b] = allowed
            else:
                sample_rows.append(b)
                masks.append(allowed)
        if sample_rows:
            index = torch.tensor(sample_rows, device=logits.device)
            if len(sample_rows) == len(rows):
                sub = logits.float()
            else:
                sub = logits.index_select(0, index).float()
            if all(m is masks[0] for m in masks):
                allowed_mask = masks[0].unsqueeze(0)
            else:
                allowed_mask = torch.stack(masks)
            sub = sub.masked_fill(~allowed_mask, float("-inf"))
            u = torch.tensor([rows[b].uniform() for b in sample_rows], dtype=torch.float64)
            picked = sample_next(sub, params, u.to(sub.device)).cpu()
            next_ids[index.cpu()] = picked
        for b, tok in forced.items():
            next_ids[b] = tok
        return next_ids


__all__ = [
    "GeneratedConversation",
    "GeneratedMessage",
    "Generator",
    "Replay",
    "SamplingParams",
    "derive_seed",
    "sample_next",
]
