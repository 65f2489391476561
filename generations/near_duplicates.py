"""Near-duplicate removal for generated snippets, within a batch and against what is already kept.

Similarity is the Jaccard index of character shingles (3-grams by default) of a normalised text:
NFKC + casefold, punctuation dropped, whitespace collapsed. "lol same!!" and "LOL same" are the same
text; "see you at the station at 8, bring the tickets" vs "... the ticket" is ~0.98; "see you at 8
tomorrow" vs "see you at 8 tmrw" is ~0.55 (kept at the default 0.8). Character shingles suit chat
messages, which are short: with word sets, two five-word messages differing in one word are only
0.67 similar, and a typo counts as a whole new word.

Scale: candidates come from MinHash + LSH banding (``num_perm`` multiply-shift hashes; bands sized
so a pair exactly at the threshold becomes a candidate with probability >= 99.5%), then each
candidate's exact Jaccard is computed from its stored shingle set. So there are no false positives,
and the only misses are pairs near the threshold that never shared a band (< 0.5% at the threshold,
falling fast above it). Exact duplicates (same normalised text) are always caught via a dict.

No Django here: callers pass plain strings.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Iterable

import numpy as np

_PUNCT = re.compile(r"[^\w\s]|_")
_SPACE = re.compile(r"\s+")
_MASK32 = np.uint64(0xFFFFFFFF)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    stripped = _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()
    # Emoji/punctuation-only messages would all normalise to "": keep their symbols instead.
    return stripped or _SPACE.sub(" ", text).strip()


def shingles(text: str, k: int = 3) -> frozenset[str]:
    """Character k-grams of the normalised text (the whole text if shorter than k)."""
    norm = normalise(text)
    if len(norm) <= k:
        return frozenset([norm])
    return frozenset(norm[i : i + k] for i in range(len(norm) - k + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def _choose_bands(num_perm: int, threshold: float, recall: float = 0.995) -> tuple[int, int]:
    """(bands, rows) with bands * rows == num_perm: the most rows (fewest spurious candidates)
    that still make a pair at ``threshold`` a candidate with probability >= ``recall``."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        if num_perm % rows:
            continue
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            best = (bands, rows)
    return best


class NearDuplicateFilter:
    """``is_duplicate(text)``: is ``text`` at least ``threshold``-similar to anything kept so far.

    ``existing_texts`` seed the filter (e.g. snippets already in the gallery); ``add`` keeps a new
    text; ``filter(texts)`` keeps the first of each near-duplicate group and adds the kept ones.
    """

    def __init__(
        self,
        existing_texts: Iterable[str] = (),
        threshold: float = 0.8,
        *,
        shingle_size: int = 3,
        num_perm: int = 64,
        seed: int = 0,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.shingle_size = shingle_size
        rng = np.random.default_rng(seed)
        # multiply-shift hashing: ((a * x + b) mod 2^64) >> 32 with random odd a
        self._a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
        self._b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self.bands, self.rows = _choose_bands(num_perm, threshold)
        self._buckets: list[dict[bytes, list[int]]] = [{} for _ in range(self.bands)]
        self._sets: list[frozenset[str]] = []
        self._exact: dict[str, int] = {}
        for text in existing_texts:
            self.add(text)

    def __len__(self) -> int:
        return len(self._sets)

    def _signature(self, sh: frozenset[str]) -> np.ndarray:
        x = np.fromiter((zlib.crc32(s.encode("utf-8")) for s in sh), dtype=np.uint64, count=len(sh))
        with np.errstate(over="ignore"):
            h = (x[:, None] * self._a[None, :] + self._b[None, :]) >> np.uint64(32)
        return (h & _MASK32).min(axis=0).astype(np.uint32)

    def _band_keys(self, sig: np.ndarray) -> list[bytes]:
        r = self.rows
        return [sig[i * r : (i + 1) * r].tobytes() for i in range(self.bands)]

    def most_similar(self, text: str) -> tuple[int | None, float]:
        """Index (in insertion order) and Jaccard of the most similar kept text, or (None, 0.0)."""
        norm = normalise(text)
        if norm in self._exact:
            return self._exact[norm], 1.0
        sh = shingles(text, self.shingle_size)
        candidates: set[int] = set()
        for band, key in zip(self._buckets, self._band_keys(self._signature(sh)), strict=True):
            candidates.update(band.get(key, ()))
        best, best_sim = None, 0.0
        for idx in candidates:
            sim = jaccard(sh, self._sets[idx])
            if sim > best_sim:
                best, best_sim = idx, sim
        return best, best_sim

    def is_duplicate(self, text: str) -> bool:
        return self.most_similar(text)[1] >= self.threshold

    def add(self, text: str) -> None:
        sh = shingles(text, self.shingle_size)
        idx = len(self._sets)
        self._sets.append(sh)
        self._exact.setdefault(normalise(text), idx)
        for band, key in zip(self._buckets, self._band_keys(self._signature(sh)), strict=True):
            band.setdefault(key, []).append(idx)

    def add_if_new(self, text: str) -> bool:
        """Keep ``text`` unless it is a near duplicate; True if it was kept."""
        if self.is_duplicate(text):
            return False
        self.add(text)
        return True

    def filter(self, texts: Iterable[str]) -> list[int]:
        """Positions of the texts kept (first of each near-duplicate group), adding them."""
        return [i for i, text in enumerate(texts) if self.add_if_new(text)]
