"""Verbatim-leak guard: how many consecutive words a generated text shares with any corpus message.

A fine-tuned model on a small group chat memorises. Before a generated snippet is shown, we ask how
long the longest run of consecutive tokens is that it shares with a single training message, and
refuse it past a threshold (8 tokens by default).

Tokens are words, not model BPE pieces. The guard tokenises both sides with a tokenizer-agnostic
regex: NFKC + casefold, curly quotes straightened, then words (letters/digits, keeping inner
apostrophes, so ``don't`` is one token) and every other non-space character as its own token, with a
run of the same punctuation character collapsed (``!!!`` == ``!``). Why not the model's tokenizer:

* the index is built once per corpus and stays valid when the base model or its vocabulary changes;
* BPE splits depend on leading spaces and casing (`` Pho`` vs ``pho``), so a copied phrase at the
  start of a message and mid-sentence would tokenise differently and slip through;
* "8 tokens" means 8 words/punctuation marks, a length a person reading the gallery recognises as a
  copied sentence, whereas 8 BPE pieces can be three words.

Index (``LeakIndex``):

* every ``n``-gram (default 8) of every message is hashed to 64 bits and stored in a sorted
  ``uint64`` array together with its global token position (``uint32``: where it starts in the
  concatenation of all messages, one separator slot between messages). A query hashes its own
  n-grams and looks them up with ``np.searchsorted``; all query texts are looked up in one
  vectorised call.
* the exact length of a run of L >= n shared tokens: a run of length L is L-n+1 consecutive n-grams
  that occur in the corpus at consecutive positions ``g, g+1, ...``. Chaining matched n-grams by
  position (not merely "the next n-gram also occurs somewhere") rules out runs stitched together
  from two different messages: two n-grams starting at ``g`` and ``g+1`` with no separator in
  either are necessarily in the same message. So the longest chain + n - 1 is the exact length.
* runs shorter than n: sizes ``min_n .. n-1`` are kept as deduplicated sorted hash sets (no
  positions needed: sharing any k-gram means a run >= k, and the property is monotone), so lengths
  in ``[min_n, n)`` are exact too; below ``min_n`` the guard reports 0. ``is_leak`` accepts any
  threshold >= ``min_n``.

Hashing: each token is hashed with keyed BLAKE2b to 64 bits (stable across processes, so the index
can be saved); an n-gram is the polynomial ``sum(h_i * B^(n-1-i)) mod 2^64`` with an odd ``B``. For
two different n-grams the difference is a sum of differences of (pseudo-random) token hashes times
odd, hence invertible, constants, so a false match has probability about 2^-64 per pair. With 10M
corpus n-grams and 50k query n-grams the expected number of false matches is ~3e-8: accepted and
ignored. A false match could only make the guard stricter (report a longer run), never miss a leak.

Memory: 12 bytes per corpus n-gram position plus 8 bytes per distinct shorter gram. Save/load is a
single ``.npz`` file (``np.savez``), meant to live beside the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
INDEX_FILENAME = "leak_index.npz"  # conventional name beside a checkpoint: folder / INDEX_FILENAME
_KEY = b"joe-leak-guard-v1"
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so every power of it is invertible mod 2^64
_SEP = "\x00"  # message separator inside the one big string tokenised at build time

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00b4": "'"})
# A word (letters/digits, inner apostrophes kept) or one non-space character (a repeated run of the
# same character collapses to one token). The separator is a non-space character too.
_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*|(\S)\1*")


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().translate(_QUOTES)


def tokenize(text: str) -> list[str]:
    """The guard's word-level tokens of ``text`` (see module docstring)."""
    return [m.group(1) or m.group(0) for m in _TOKEN_RE.finditer(normalise(text))]


class _TokenHasher:
    """Stable 64-bit token hashes, cached per distinct token."""

    def __init__(self) -> None:
        self._cache: dict[str, int] = {}

    def __call__(self, token: str) -> int:
        h = self._cache.get(token)
        if h is None:
            digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8, key=_KEY).digest()
            h = int.from_bytes(digest, "little")
            if len(self._cache) < 2_000_000:
                self._cache[token] = h
        return h

    def array(self, tokens: Sequence[str]) -> np.ndarray:
        return np.fromiter((self(t) for t in tokens), dtype=np.uint64, count=len(tokens))


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` in numpy 2.x hashes first, ~10x slower here)."""
    a = np.sort(a)
    if len(a) == 0:
        return a
    keep = np.empty(len(a), dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def _gram_hashes(tok: np.ndarray, sep: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of all k-grams of ``tok`` that contain no separator, and their start positions."""
    count = len(tok) - k + 1
    if count <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    h = tok[:count].copy()
    for t in range(1, k):
        h *= _BASE
        h += tok[t : t + count]
    sep_cum = np.concatenate(([0], np.cumsum(sep, dtype=np.int64)))
    valid = (sep_cum[k : k + count] - sep_cum[:count]) == 0
    starts = np.flatnonzero(valid)
    return h[starts], starts


class LeakIndex:
    """Hashed n-gram index of a training corpus; see the module docstring."""

    def __init__(
        self,
        n: int,
        min_n: int,
        hashes: np.ndarray,
        positions: np.ndarray,
        short_sets: dict[int, np.ndarray],
        n_messages: int = 0,
    ) -> None:
        if not 1 <= min_n <= n:
            raise ValueError(f"need 1 <= min_n <= n, got min_n={min_n} n={n}")
        self.n = n
        self.min_n = min_n
        self.hashes = hashes  # sorted uint64 n-gram hashes
        self.positions = positions  # uint32 global start positions, sorted within equal hashes
        self.short_sets = short_sets  # k -> sorted unique uint64 k-gram hashes, min_n <= k < n
        self.n_messages = n_messages
        self._hasher = _TokenHasher()

    # ---------------------------------------------------------------- build / persist
    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        *,
        n: int = 8,
        min_n: int | None = None,
        chunk_messages: int = 200_000,
    ) -> LeakIndex:
        """Index every message of ``texts``.

        ``min_n`` (default ``n // 2``) is the shortest run length the index reports exactly; shorter
        runs read as 0. Messages are processed in chunks so peak memory stays near the index size.
        """
        min_n = max(1, n // 2) if min_n is None else min_n
        if not 1 <= min_n <= n:
            raise ValueError(f"need 1 <= min_n <= n, got min_n={min_n} n={n}")
        hasher = _TokenHasher()
        sep_hash = np.uint64(hasher(_SEP))
        n_hashes, n_pos = [], []
        short: dict[int, list[np.ndarray]] = {k: [] for k in range(min_n, n)}
        offset = 0
        n_messages = 0
        chunk: list[str] = []

        def flush() -> None:
            nonlocal offset
            if not chunk:
                return
            # One regex pass over the whole chunk; messages end with a separator token, and the
            # separator itself is scrubbed from message text so it cannot occur inside one.
            big = _SEP.join(t.replace(_SEP, " ") for t in chunk) + _SEP
            tokens = tokenize(big)
            tok = hasher.array(tokens)
            sep = tok == sep_hash
            h, starts = _gram_hashes(tok, sep, n)
            n_hashes.append(h)
            n_pos.append(starts + offset)
            for k in short:
                hk, _ = _gram_hashes(tok, sep, k)
                short[k].append(_sorted_unique(hk))
            offset += len(tok)
            chunk.clear()

        for text in texts:
            chunk.append(text)
            n_messages += 1
            if len(chunk) >= chunk_messages:
                flush()
        flush()
        if offset >= 2**32:
            raise ValueError("corpus over 4G tokens: positions do not fit uint32")
        hashes = np.concatenate(n_hashes) if n_hashes else np.empty(0, np.uint64)
        positions = np.concatenate(n_pos) if n_pos else np.empty(0, np.int64)
        order = np.argsort(hashes, kind="stable")  # stable: positions stay sorted per hash
        short_sets = {
            k: _sorted_unique(np.concatenate(parts)) if parts else np.empty(0, np.uint64)
            for k, parts in short.items()
        }
        return cls(
            n,
            min_n,
            hashes[order],
            positions[order].astype(np.uint32),
            short_sets,
            n_messages,
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        meta = {
            "version": FORMAT_VERSION,
            "n": self.n,
            "min_n": self.min_n,
            "n_messages": self.n_messages,
        }
        arrays = {f"short_{k}": v for k, v in self.short_sets.items()}
        with path.open("wb") as fh:  # a file handle: np.savez would append ".npz" to a bare name
            np.savez(
                fh,
                meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                hashes=self.hashes,
                positions=self.positions,
                **arrays,
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> LeakIndex:
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            if meta.get("version") != FORMAT_VERSION:
                raise ValueError(f"leak index format {meta.get('version')} != {FORMAT_VERSION}")
            n, min_n = int(meta["n"]), int(meta["min_n"])
            short_sets = {k: data[f"short_{k}"] for k in range(min_n, n)}
            return cls(n, min_n, data["hashes"], data["positions"], short_sets, meta["n_messages"])

    @property
    def nbytes(self) -> int:
        return (
            self.hashes.nbytes
            + self.positions.nbytes
            + sum(v.nbytes for v in self.short_sets.values())
        )

    # ---------------------------------------------------------------- queries
    def longest_shared_run(self, text: str) -> int:
        """Longest run of consecutive tokens ``text`` shares with one corpus message.

        Exact for runs of ``min_n`` tokens or more (up to 64-bit hash collisions); 0 below that.
        """
        return self.longest_shared_runs([text])[0]

    def is_leak(self, text: str, threshold: int = 8) -> bool:
        """True if ``text`` shares ``threshold`` or more consecutive tokens with one message."""
        if threshold < self.min_n:
            raise ValueError(f"threshold {threshold} below the index's min_n {self.min_n}")
        return self.longest_shared_run(text) >= threshold

    def longest_shared_runs(self, texts: Sequence[str]) -> list[int]:
        """``longest_shared_run`` for many texts, with all hash lookups vectorised."""
        token_lists = [tokenize(t) for t in texts]
        lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(texts))
        result = np.zeros(len(texts), dtype=np.int64)
        if not texts or lengths.sum() == 0:
            return result.tolist()
        # Same layout as the corpus: each text followed by one separator slot.
        ends = np.cumsum(lengths + 1)  # one past each text's separator
        sep = np.zeros(int(ends[-1]), dtype=bool)
        sep[ends - 1] = True
        tok = np.zeros(int(ends[-1]), dtype=np.uint64)  # separator slots are masked by ``sep``
        tok[~sep] = self._hasher.array([t for toks in token_lists for t in toks])

        def owner(pos: np.ndarray) -> np.ndarray:
            return np.searchsorted(ends, pos, side="right")

        # Shorter sizes: the longest k in [min_n, n) with any hit, per text.
        for k in range(self.min_n, self.n):
            hk, pk = _gram_hashes(tok, sep, k)
            table = self.short_sets[k]
            if len(hk) == 0 or len(table) == 0:
                continue
            idx = np.minimum(np.searchsorted(table, hk), len(table) - 1)
            hit = table[idx] == hk
            result[owner(pk[hit])] = k  # increasing k overwrites: the max wins

        # Size n: chain matched n-grams by corpus position for the exact length.
        hn, pn = _gram_hashes(tok, sep, self.n)
        if len(hn) and len(self.hashes):
            lo = np.searchsorted(self.hashes, hn, side="left")
            hi = np.searchsorted(self.hashes, hn, side="right")
            matched = np.flatnonzero(hi > lo)
            if len(matched):
                chains = self._chain_lengths(pn[matched], lo[matched], hi[matched])
                best = np.zeros(len(texts), dtype=np.int64)
                np.maximum.at(best, owner(pn[matched]), chains + self.n - 1)
                result = np.maximum(result, best)
        return result.tolist()

    def _chain_lengths(self, qpos: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """For each matched query n-gram (sorted query positions), the longest chain ending there.

        A chain is consecutive query n-grams matched at consecutive corpus positions. ``lo:hi`` is
        the slice of ``self.positions`` holding the corpus positions of that n-gram (sorted).
        """
        out = np.ones(len(qpos), dtype=np.int64)
        prev_q = -2
        prev_g = np.empty(0, np.int64)
        prev_c = np.empty(0, np.int64)
        for i in range(len(qpos)):
            g = self.positions[lo[i] : hi[i]].astype(np.int64)
            c = np.ones(len(g), dtype=np.int64)
            if qpos[i] == prev_q + 1 and len(prev_g):
                j = np.minimum(np.searchsorted(prev_g, g - 1), len(prev_g) - 1)
                cont = prev_g[j] == g - 1
                c[cont] = prev_c[j[cont]] + 1
            out[i] = c.max()
            prev_q, prev_g, prev_c = qpos[i], g, c
        return out
