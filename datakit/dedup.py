"""Near-duplicate detection: normalised words, MinHash LSH band keys, and connected components over them.

Everything is vectorised over a batch with numpy, and every hash is derived from fixed constants
(xxh64 and splitmix64, never Python's salted `hash()`), so keys computed in different processes or
runs can be compared.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from itertools import chain

import numpy as np
import polars as pl
from xxhash import xxh64_intdigest

_WORD = re.compile(r"[^\W_]+")  # \w without '_': letters and digits of any script
_MASK64 = (1 << 64) - 1
_PRIME = (1 << 31) - 1  # Mersenne: a*h + b < 2^62 for a, b, h < 2^31, so uint64 never overflows
_EMPTY = np.uint64(_MASK64)  # MinHash value of a text without words: above any reduced permutation value
_CHUNK = 1024  # shingles per numpy block: bands*rows x 1024 uint64 stays in cache


def words(text: str) -> list[str]:
    """Normalised word tokens: NFKC, lower-case, runs of letters/digits (unicode \\w without '_'), so
    punctuation/whitespace/case differences never matter. Shared by dedup and decontamination."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def words_column(texts: pl.Series) -> pl.Series:
    """`words` of every text as a list column, the same lists `words` gives. ASCII texts (most of a
    corpus) are split by polars, many at once: NFKC and lower-casing leave ASCII as ASCII, and there
    letters/digits are [a-z0-9]; any other text goes through `words` itself."""
    ascii_only = texts.str.contains(r"^[\x00-\x7F]*$")
    lowered = texts.str.to_lowercase().str.extract_all("[a-z0-9]+")
    if ascii_only.all():
        return lowered
    others: list[list[str] | None] = [None] * len(texts)
    for i in (~ascii_only).arg_true().to_list():
        others[i] = words(texts[i])
    both = pl.DataFrame({"ascii": ascii_only, "polars": lowered, "python": pl.Series(others, dtype=pl.List(pl.String))})
    return both.select(pl.when("ascii").then("polars").otherwise("python")).to_series().alias(texts.name)


def column_word_hashes(tokens: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """`word_hashes` of a list column of words: each distinct word is hashed once (a corpus repeats
    its words), then looked up for every occurrence."""
    flat = tokens.explode(empty_as_null=False)
    vocabulary = flat.unique()
    hashes = np.fromiter(map(xxh64_intdigest, map(str.encode, vocabulary.to_list())), dtype=np.uint64, count=len(vocabulary))
    codes = flat.cast(pl.Enum(vocabulary)).to_physical().to_numpy()
    return hashes[codes], tokens.list.len().to_numpy().astype(np.int64)


def _splitmix64(x: int) -> int:
    """One step of splitmix64 on a Python int: the seed expander for all constants below."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (a bijection; uint64 products wrap, as intended)."""
    z = z ^ (z >> np.uint64(30))
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


# Odd per-position multipliers of the gram hash; fixed, so n-gram hashes mean the same everywhere.
_POSITION = np.array([_splitmix64(0x5EED0000 + j) | 1 for j in range(64)], dtype=np.uint64)
_LENGTH = np.uint64(_splitmix64(0x1E46) | 1)


def word_hashes(tokens: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """xxh64 of every word of every text, flattened, and each text's word count."""
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    flat = np.fromiter(
        map(xxh64_intdigest, map(str.encode, chain.from_iterable(tokens))), dtype=np.uint64, count=int(lengths.sum())
    )
    return flat, lengths


def gram_hashes(
    flat: np.ndarray, lengths: np.ndarray, m: int, whole_if_shorter: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hash of every run of `m` consecutive words inside one text, as (hashes, text index, start word).

    A run of k words hashes the same whatever `m` asked for it, so a text shorter than `m` taken whole
    (`whole_if_shorter`) equals its k-gram found inside another text. Order-sensitive; 64 bits."""
    if m > len(_POSITION):
        raise ValueError(f"gram length {m} > {len(_POSITION)}")
    counts = np.maximum(lengths - m + 1, 0)
    if whole_if_shorter:
        counts = np.minimum(lengths, np.maximum(counts, 1))
    text = np.repeat(np.arange(len(lengths)), counts)
    start = np.arange(len(text)) - np.repeat(np.cumsum(counts) - counts, counts)
    pos = (np.cumsum(lengths) - lengths)[text] + start
    size = np.minimum(lengths[text], m).astype(np.uint64)
    h = size * _LENGTH
    last = max(len(flat) - 1, 0)
    for j in range(m):
        term = flat[np.minimum(pos + j, last)] * _POSITION[j]  # clipped: a short text's tail is masked below
        h += np.where(size > j, term, np.uint64(0)) if whole_if_shorter else term
    return mix64(h), text, start


class MinHasher:
    """MinHash over word shingles with LSH banding: texts whose shingle sets have Jaccard similarity
    above ~`threshold` share a band key with high probability."""

    def __init__(self, shingle: int = 5, bands: int = 14, rows: int = 8, seed: int = 0) -> None:
        if shingle < 1 or bands < 1 or rows < 1:
            raise ValueError("shingle, bands and rows must be >= 1")
        self.shingle, self.bands, self.rows, self.seed = shingle, bands, rows, seed
        # permutation i: h -> (a_i*h + b_i) mod (2^31 - 1), a_i in [1, p), b_i in [0, p)
        state = [_splitmix64((seed << 20) + i) for i in range(2 * bands * rows + bands)]
        k = bands * rows
        self._a = np.array([1 + s % (_PRIME - 1) for s in state[:k]], dtype=np.uint64)[:, None]
        self._b = np.array([s % _PRIME for s in state[k : 2 * k]], dtype=np.uint64)[:, None]
        self._band_seed = np.array(state[2 * k :], dtype=np.uint64)

    @property
    def threshold(self) -> float:
        """Approximate Jaccard similarity at which two texts collide in at least one band."""
        return (1 / self.bands) ** (1 / self.rows)

    def signatures(self, texts: list[str]) -> np.ndarray:
        """(len(texts), bands*rows) uint64 MinHash values (< 2^31); a text without words gets all 2^64-1."""
        return self.word_signatures([words(t) for t in texts])

    def word_signatures(self, tokens: list[list[str]]) -> np.ndarray:
        """`signatures` of texts already split by `words` (callers that tokenise once for several uses)."""
        return self.hashed_signatures(*word_hashes(tokens))

    def hashed_signatures(self, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """`signatures` of texts given as `word_hashes` (callers that hash the words once for several uses)."""
        shingles, owner, _ = gram_hashes(flat, lengths, self.shingle, whole_if_shorter=True)
        shingles >>= np.uint64(33)  # 31 bits
        sig = np.full((len(lengths), len(self._a)), _EMPTY, dtype=np.uint64)
        # numpy lets go of the GIL inside each operation: two halves, cut where a text starts so that
        # they fill different rows of `sig`, run on two threads
        cut = int(np.searchsorted(owner, owner[len(owner) // 2])) if len(owner) > 4 * _CHUNK else len(owner)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(self._fold_minima, (shingles[:cut], shingles[cut:]), (owner[:cut], owner[cut:]), (sig, sig)))
        return sig

    def _fold_minima(self, shingles: np.ndarray, owner: np.ndarray, sig: np.ndarray) -> None:
        """Lower each owner's row of `sig` to the minimum of every permutation over its shingles."""
        prime, shift = np.uint64(_PRIME), np.uint64(31)
        for lo in range(0, len(shingles), _CHUNK):
            h, who = shingles[lo : lo + _CHUNK], owner[lo : lo + _CHUNK]
            x = self._a * h  # (perms, chunk)
            x += self._b
            # x mod (2^31 - 1) without division: fold the high bits down twice (x < 2^62, then < 2^32).
            # Left at most p+1 rather than reduced to < p: p and p+1 stand for 0 and 1, still a fixed
            # function of h, which is all MinHash needs.
            for _ in range(2):
                y = x >> shift
                x &= prime
                x += y
            first = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])
            texts_here = who[first]
            # a text can span two chunks: keep the smaller of the two partial minima
            sig[texts_here] = np.minimum(sig[texts_here], np.minimum.reduceat(x, first, axis=1).T)

    def band_keys(self, texts: list[str]) -> np.ndarray:
        """(len(texts), bands) uint64: one key per LSH band; two texts sharing any key in the same
        column are candidate near-duplicates. Deterministic across processes and runs. Texts shorter
        than `shingle` words are one shingle; texts without words share keys only with each other."""
        return self.word_band_keys([words(t) for t in texts])

    def word_band_keys(self, tokens: list[list[str]]) -> np.ndarray:
        """`band_keys` of texts already split by `words`."""
        return self.hashed_band_keys(*word_hashes(tokens))

    def hashed_band_keys(self, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """`band_keys` of texts given as `word_hashes`."""
        sig = self.hashed_signatures(flat, lengths).reshape(len(lengths), self.bands, self.rows)
        keys = np.broadcast_to(self._band_seed, (len(lengths), self.bands)).copy()
        for r in range(self.rows):
            keys = mix64(keys ^ sig[:, :, r])
        return keys


def cluster(keys: np.ndarray) -> np.ndarray:
    """For a (n, bands) key matrix: for each row, the index of the earliest row in its connected
    component (rows connected when they share a key in the same column; transitive)."""
    keys = np.asarray(keys)
    if keys.ndim != 2:
        raise ValueError(f"keys must be (rows, bands), got shape {keys.shape}")
    rows = np.arange(keys.shape[0])
    return cluster_columns(((rows, column) for column in keys.T), keys.shape[0])


def cluster_columns(columns: Iterable[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """`cluster` of n rows given one column at a time, as (rows, their keys in that column); rows whose
    key no other row shares may be left out, so a caller can pass only the shared keys and never hold
    a corpus's band keys in memory.

    Union-find done with arrays: each round hooks the root of every group member onto the smallest
    root in its group, then pointer-jumps until every row points at its root; rounds repeat until
    nothing moves. Only keys shared by >= 2 rows take part, which at dedup scale is a small fraction."""
    index = np.int32 if n < 2**31 else np.int64  # half the memory for any corpus below 2^31 rows
    members, starts, offset = [], [], 0
    for rows, column in columns:
        if not len(column):
            continue
        order = np.argsort(column, kind="stable")
        sorted_keys = column[order]
        new = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
        group = np.cumsum(new) - 1
        shared = np.bincount(group)[group] >= 2
        members.append(np.asarray(rows, dtype=index)[order[shared]])
        starts.append(np.flatnonzero(new[shared]) + offset)
        offset += int(shared.sum())
    member = np.concatenate(members) if members else np.zeros(0, index)
    start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    size = np.diff(np.r_[start, len(member)])
    root = np.arange(n, dtype=index)
    while len(member):
        labels = root[member]
        smallest = np.repeat(np.minimum.reduceat(labels, start), size)
        moved = smallest < labels
        if not moved.any():
            break
        np.minimum.at(root, labels[moved], smallest[moved])
        while True:  # pointer jumping: every row straight to its root
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped
    return root
