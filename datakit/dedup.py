"""Near-duplicate detection: normalised words, MinHash LSH band keys, and connected components over them.

Everything works on a batch at once: numpy, and numba for the inner loops (splitting and hashing ASCII
words, n-gram hashes, MinHash), which let go of the GIL so callers can run batches on threads. Every
hash is derived from fixed constants (xxh64 and splitmix64, never Python's salted `hash()`), so keys
computed in different processes or runs can be compared.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from itertools import chain

import numba
import numpy as np
import polars as pl
from xxhash import xxh64_intdigest

from datakit.arrow_buffers import read_u64, utf8_buffers

_WORD = re.compile(r"[^\W_]+")  # \w without '_': letters and digits of any script
_MASK64 = (1 << 64) - 1
_EMPTY = np.uint64(_MASK64)  # MinHash value of a text without words: above any 32-bit permutation value


def words(text: str) -> list[str]:
    """Normalised word tokens: NFKC, lower-case, runs of letters/digits (unicode \\w without '_'), so
    punctuation/whitespace/case differences never matter. Shared by dedup and decontamination."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def text_word_hashes(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """`word_hashes` of the `words` of every text (null: no words), the same values, without a Python
    string per word: ASCII texts (most of a corpus) are split and hashed by a compiled scan of their
    bytes (NFKC and lower-casing leave ASCII as ASCII, and there letters/digits are [a-z0-9]); any
    other text goes through `words` itself."""
    data, offsets = utf8_buffers(texts.fill_null("").to_arrow())
    flat = np.empty(int(offsets[-1] - offsets[0]) // 2 + len(texts) + 1, dtype=np.uint64)  # a word takes a byte and a gap
    lengths = np.empty(len(texts), dtype=np.int64)
    flat = flat[: _ascii_word_hashes(data, offsets, flat, lengths)]
    others = np.flatnonzero(lengths < 0)  # texts that are not pure ASCII
    if not len(others):
        return flat, lengths
    other_flat, lengths[others] = word_hashes([words(t) for t in texts.fill_null("").gather(others).to_list()])
    is_other = np.zeros(len(texts), dtype=bool)
    is_other[others] = True
    from_other = np.repeat(is_other, lengths)
    merged = np.empty(len(from_other), dtype=np.uint64)
    merged[~from_other], merged[from_other] = flat, other_flat
    return merged, lengths


def text_hashes(reasoning: pl.Series, answer: pl.Series) -> pl.Series:
    """`schema.text_hash` of every row (null where either text is null), compiled: the mix hashes a
    million short texts in ~0.1 s this way, where a Python call a row would take seconds."""
    r_data, r_offsets = utf8_buffers(reasoning.fill_null("").to_arrow())
    a_data, a_offsets = utf8_buffers(answer.fill_null("").to_arrow())
    hashes = pl.Series("text_hash", _text_hashes(r_data, r_offsets, a_data, a_offsets), dtype=pl.UInt64)
    missing = reasoning.is_null() | answer.is_null()
    return hashes.scatter(missing.arg_true(), None) if missing.any() else hashes


@numba.njit(nogil=True, cache=True)
def _text_hashes(r_data: np.ndarray, r_offsets: np.ndarray, a_data: np.ndarray, a_offsets: np.ndarray) -> np.ndarray:
    keys = np.empty(len(r_offsets) - 1, dtype=np.uint64)
    for t in range(len(keys)):
        keys[t] = xxh64_span(a_data, a_offsets[t], a_offsets[t + 1], xxh64_span(r_data, r_offsets[t], r_offsets[t + 1]))
    return keys


def sequence_keys(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """One 64-bit key per text of `word_hashes`: equal exactly when the texts' word sequences are equal
    (up to a 64-bit collision); xxh64 of the text's word hashes."""
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return _sequence_keys(np.ascontiguousarray(flat).view(np.uint8), starts * 8)


# xxh64, compiled, for the scans below: equal to xxhash's for any bytes and seed (tests/test_dedup.py)
_XXH_P1, _XXH_P2, _XXH_P3 = np.uint64(0x9E3779B185EBCA87), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9)
_XXH_P4, _XXH_P5 = np.uint64(0x85EBCA77C2B2AE63), np.uint64(0x27D4EB2F165667C5)


@numba.njit(inline="always")
def _rotl(x: np.uint64, r: int) -> np.uint64:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(inline="always")
def _read_le(data: np.ndarray, at: int, size: int) -> np.uint64:
    value = np.uint64(0)
    for k in range(size):
        value |= np.uint64(data[at + k]) << np.uint64(8 * k)
    return value


@numba.njit(inline="always")
def _xxh_round(acc: np.uint64, lane: np.uint64) -> np.uint64:
    return _rotl(acc + lane * _XXH_P2, 31) * _XXH_P1


@numba.njit(nogil=True, cache=True)
def xxh64_span(data: np.ndarray, lo: int, hi: int, seed: np.uint64 = np.uint64(0)) -> np.uint64:
    """xxh64 of data[lo:hi] (uint8)."""
    i = lo
    if hi - lo >= 32:
        v1, v2, v3, v4 = seed + _XXH_P1 + _XXH_P2, seed + _XXH_P2, seed, seed - _XXH_P1
        while i + 32 <= hi:
            v1 = _xxh_round(v1, read_u64(data, i))
            v2 = _xxh_round(v2, read_u64(data, i + 8))
            v3 = _xxh_round(v3, read_u64(data, i + 16))
            v4 = _xxh_round(v4, read_u64(data, i + 24))
            i += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        for v in (v1, v2, v3, v4):
            h = (h ^ _xxh_round(np.uint64(0), v)) * _XXH_P1 + _XXH_P4
    else:
        h = seed + _XXH_P5
    h += np.uint64(hi - lo)
    while i + 8 <= hi:
        h = _rotl(h ^ _xxh_round(np.uint64(0), read_u64(data, i)), 27) * _XXH_P1 + _XXH_P4
        i += 8
    if i + 4 <= hi:
        h = _rotl(h ^ (_read_le(data, i, 4) * _XXH_P1), 23) * _XXH_P2 + _XXH_P3
        i += 4
    while i < hi:
        h = _rotl(h ^ (np.uint64(data[i]) * _XXH_P5), 11) * _XXH_P1
        i += 1
    h ^= h >> np.uint64(33)
    h *= _XXH_P2
    h ^= h >> np.uint64(29)
    h *= _XXH_P3
    h ^= h >> np.uint64(32)
    return h


# Each byte as the ASCII word scan reads it: a letter or digit (A-Z lower-cased), 0 between words, or
# _NOT_ASCII (bytes of multi-byte UTF-8 characters: the text goes through `words` instead).
_NOT_ASCII = 255
_ASCII_WORD_BYTES = np.array([c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 or 48 <= c <= 57 else _NOT_ASCII if c >= 128 else 0
                              for c in range(256)], dtype=np.uint8)


@numba.njit(nogil=True, cache=True)
def _ascii_word_hashes(data: np.ndarray, offsets: np.ndarray, flat: np.ndarray, lengths: np.ndarray) -> int:
    """For each text data[offsets[t]:offsets[t+1]]: if pure ASCII, xxh64 of each lower-cased run of
    [A-Za-z0-9] appended to `flat` and their count in lengths[t]; otherwise lengths[t] = -1. Returns
    how much of `flat` is filled. One pass a text, a table lookup a byte."""
    word = np.empty(max(1, int(offsets[-1] - offsets[0])), dtype=np.uint8)
    filled = 0
    for t in range(len(offsets) - 1):
        first, size, count = filled, 0, 0
        for i in range(offsets[t], offsets[t + 1] + 1):  # one step past the end: it ends the last word
            c = _ASCII_WORD_BYTES[data[i]] if i < offsets[t + 1] else np.uint8(0)
            if c == _NOT_ASCII:
                count = -1
                break
            if c:
                word[size] = c
                size += 1
            elif size:
                flat[filled] = xxh64_span(word, 0, size)
                filled += 1
                count += 1
                size = 0
        lengths[t] = count
        if count < 0:
            filled = first  # its words are hashed from `words` instead
    return filled


def prefixed_keys(texts: pl.Series, prefix: str, seed: int) -> np.ndarray:
    """xxh64 (seeded) of `prefix` + each text, as xxhash gives it for the UTF-8 bytes: one key per
    text without a Python string each (a mix's draw keys, one per prompt)."""
    data, offsets = utf8_buffers(texts.fill_null("").to_arrow())
    return _prefixed_keys(data, offsets, np.frombuffer(prefix.encode(), dtype=np.uint8), np.uint64(seed))


@numba.njit(nogil=True, cache=True)
def _prefixed_keys(data: np.ndarray, offsets: np.ndarray, prefix: np.ndarray, seed: np.uint64) -> np.ndarray:
    longest = 0
    for t in range(len(offsets) - 1):
        longest = max(longest, offsets[t + 1] - offsets[t])
    joined = np.empty(len(prefix) + longest, dtype=np.uint8)
    joined[: len(prefix)] = prefix
    keys = np.empty(len(offsets) - 1, dtype=np.uint64)
    for t in range(len(keys)):
        size = offsets[t + 1] - offsets[t]
        joined[len(prefix) : len(prefix) + size] = data[offsets[t] : offsets[t + 1]]
        keys[t] = xxh64_span(joined, 0, len(prefix) + size, seed)
    return keys


@numba.njit(nogil=True, cache=True)
def _sequence_keys(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    keys = np.empty(len(starts) - 1, dtype=np.uint64)
    for t in range(len(keys)):
        keys[t] = xxh64_span(data, starts[t], starts[t + 1])
    return keys


def _splitmix64(x: int) -> int:
    """One step of splitmix64 on a Python int: the seed expander for all constants below."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


@numba.njit(inline="always")
def _mix64_one(z: np.uint64) -> np.uint64:
    """`mix64` of one value, inside compiled code."""
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (a bijection; uint64 products wrap, as intended):
    compiled, one pass without the GIL, rather than numpy's seven passes holding it between them."""
    z = np.ascontiguousarray(z, dtype=np.uint64)
    return _mix64_all(z.reshape(-1)).reshape(z.shape)


@numba.njit(nogil=True, cache=True)
def _mix64_all(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    for i in range(len(z)):
        out[i] = _mix64_one(z[i])
    return out


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
    flat: np.ndarray, lengths: np.ndarray, m: int, whole_if_shorter: bool = False, sieve: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hash of every run of `m` consecutive words inside one text, as (hashes, text index, start word).

    A run of k words hashes the same whatever `m` asked for it, so a text shorter than `m` taken whole
    (`whole_if_shorter`) equals its k-gram found inside another text. Order-sensitive; 64 bits. With a
    `sieve` (a bool array of 2^bits), only the hashes whose top bits index a True are returned."""
    if m > len(_POSITION):
        raise ValueError(f"gram length {m} > {len(_POSITION)}")
    sieve = np.ones(1, dtype=bool) if sieve is None else sieve
    bits = int(len(sieve)).bit_length() - 1
    if len(sieve) != 1 << bits:
        raise ValueError(f"a sieve has a power-of-two length, got {len(sieve)}")
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return _gram_hashes(np.asarray(flat, dtype=np.uint64), starts, m, whole_if_shorter, sieve, bits)


@numba.njit(inline="always")
def _gram_hash(flat: np.ndarray, at: int, size: int) -> np.uint64:
    """The hash of the `size` words flat[at:at+size]: position-weighted, then mixed."""
    h = np.uint64(size) * _LENGTH
    for j in range(size):
        h += flat[at + j] * _POSITION[j]
    return _mix64_one(h)


@numba.njit(inline="always")
def _grams_of(starts: np.ndarray, t: int, m: int, whole_if_shorter: bool) -> tuple[int, int]:
    """Text t's grams: (how many, words each)."""
    n = starts[t + 1] - starts[t]
    if n >= m:
        return n - m + 1, m
    return (1, n) if whole_if_shorter and n > 0 else (0, n)


@numba.njit(nogil=True, cache=True)
def _gram_hashes(
    flat: np.ndarray, starts: np.ndarray, m: int, whole_if_shorter: bool, sieve: np.ndarray, bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    total = 0
    for t in range(len(starts) - 1):
        total += _grams_of(starts, t, m, whole_if_shorter)[0]
    hashes, text, start = np.empty(total, np.uint64), np.empty(total, np.int64), np.empty(total, np.int64)
    kept = 0
    for t in range(len(starts) - 1):
        count, size = _grams_of(starts, t, m, whole_if_shorter)
        for s in range(count):
            h = _gram_hash(flat, starts[t] + s, size)
            slot = np.int64(h >> np.uint64(64 - bits)) if bits else np.int64(0)
            if sieve[slot]:
                hashes[kept], text[kept], start[kept] = h, t, s
                kept += 1
    return hashes[:kept], text[:kept], start[:kept]


@numba.njit(inline="always")
def _permuted(h: np.uint32, xor: np.uint32, mul: np.uint32) -> np.uint32:
    """One of the MinHash permutations of 32-bit values (see _text_minima)."""
    x = np.uint32((h ^ xor) * mul)
    return np.uint32(x ^ (x >> np.uint32(15)))


@numba.njit(inline="always")
def _text_minima(flat: np.ndarray, starts: np.ndarray, t: int, m: int, xor: np.ndarray, mul: np.ndarray, low: np.ndarray, shingles: np.ndarray) -> int:
    """`low` set to text t's MinHash values: the minimum, over its shingles (its `m`-grams, or the whole
    text when shorter; the top 32 bits h of `_gram_hash`), of every permutation of 32-bit values
    h -> x = (h ^ xor) * mul mod 2^32 (mul odd), then x ^ (x >> 15). Returns its shingle count (0: no
    words, `low` all 2^32-1). `shingles` is work space for the most shingles of a text.

    Each step is a bijection, so each is a permutation, and the shingle hashes it permutes are already
    uniform: the minimum matches between two texts with the probability of their Jaccard similarity,
    independently across permutations (tests/test_dedup.py measures both against theory). Kept in 32
    bits, the loop over permutations runs 8 lanes to an AVX2 instruction, ~2.4x the speed of the
    (a*h + b) mod (2^31 - 1) family it replaced, whose 64-bit products take 4 lanes and two folds.
    Four shingles go through each pass over the permutations: one shingle a pass spent half its time
    loading and storing the running minima."""
    low[:] = np.uint32(0xFFFFFFFF)
    count, size = _grams_of(starts, t, m, True)
    for s in range(count):
        shingles[s] = np.uint32(_gram_hash(flat, starts[t] + s, size) >> np.uint64(32))
    s = 0
    while s + 4 <= count:
        h0, h1, h2, h3 = shingles[s], shingles[s + 1], shingles[s + 2], shingles[s + 3]
        for j in range(len(mul)):
            a, b = xor[j], mul[j]
            low[j] = min(low[j], min(min(_permuted(h0, a, b), _permuted(h1, a, b)), min(_permuted(h2, a, b), _permuted(h3, a, b))))
        s += 4
    for s in range(s, count):
        for j in range(len(mul)):
            low[j] = min(low[j], _permuted(shingles[s], xor[j], mul[j]))
    return count


@numba.njit(nogil=True, cache=True)
def _fold_minima(flat: np.ndarray, starts: np.ndarray, m: int, xor: np.ndarray, mul: np.ndarray, sig: np.ndarray, low: np.ndarray, shingles: np.ndarray) -> None:
    """Row t of `sig`: text t's MinHash values (`_text_minima`; all _EMPTY for a text without words).
    Compiled, with no temporaries: `low` and `shingles` are the caller's work space."""
    for t in range(len(starts) - 1):
        count = _text_minima(flat, starts, t, m, xor, mul, low, shingles)
        for j in range(len(mul)):
            sig[t, j] = _EMPTY if count == 0 else np.uint64(low[j])


@numba.njit(nogil=True, cache=True)
def _fold_band_keys(
    flat: np.ndarray, starts: np.ndarray, m: int, xor: np.ndarray, mul: np.ndarray, seeds: np.ndarray, rows: int, keys: np.ndarray, low: np.ndarray, shingles: np.ndarray
) -> None:
    """keys[t, b]: band b's `rows` MinHash values of text t (as `_fold_minima` gives them) folded into
    one key, starting from seeds[b]: key = mix64(key ^ value) for each value in turn. The signatures
    are never stored (~900 bytes a text, written and read back)."""
    for t in range(len(starts) - 1):
        count = _text_minima(flat, starts, t, m, xor, mul, low, shingles)
        for b in range(len(seeds)):
            key = seeds[b]
            for r in range(rows):
                key = _mix64_one(key ^ (_EMPTY if count == 0 else np.uint64(low[b * rows + r])))
            keys[t, b] = key


class MinHasher:
    """MinHash over word shingles with LSH banding: texts whose shingle sets have Jaccard similarity
    above ~`threshold` share a band key with high probability."""

    def __init__(self, shingle: int = 5, bands: int = 14, rows: int = 8, seed: int = 0) -> None:
        if shingle < 1 or bands < 1 or rows < 1:
            raise ValueError("shingle, bands and rows must be >= 1")
        self.shingle, self.bands, self.rows, self.seed = shingle, bands, rows, seed
        # permutation i (see _text_minima): a 32-bit xor mask and an odd 32-bit multiplier
        state = [_splitmix64((seed << 20) + i) for i in range(2 * bands * rows + bands)]
        k = bands * rows
        self._xor = np.array([s >> 32 for s in state[:k]], dtype=np.uint32)
        self._mul = np.array([(s >> 32) | 1 for s in state[k : 2 * k]], dtype=np.uint32)
        self._band_seed = np.array(state[2 * k :], dtype=np.uint64)

    @property
    def threshold(self) -> float:
        """Approximate Jaccard similarity at which two texts collide in at least one band."""
        return (1 / self.bands) ** (1 / self.rows)

    def signatures(self, texts: list[str]) -> np.ndarray:
        """(len(texts), bands*rows) uint64 MinHash values (< 2^32); a text without words gets all 2^64-1."""
        return self.word_signatures([words(t) for t in texts])

    def word_signatures(self, tokens: list[list[str]]) -> np.ndarray:
        """`signatures` of texts already split by `words` (callers that tokenise once for several uses)."""
        return self.hashed_signatures(*word_hashes(tokens))

    def hashed_signatures(self, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """`signatures` of texts given as `word_hashes` (callers that hash the words once for several uses)."""
        sig = np.empty((len(lengths), len(self._mul)), dtype=np.uint64)  # each row set by the kernel
        _fold_minima(*self._kernel_input(flat, lengths), sig, *self._work_space(lengths))  # lets go of the GIL: callers run batches on threads
        return sig

    def _kernel_input(self, flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
        starts = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        return np.asarray(flat, dtype=np.uint64), starts, self.shingle, self._xor, self._mul

    def _work_space(self, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The kernels' work space, made here: a compiled loop runs several times slower when its
        function allocates arrays."""
        return np.empty(len(self._mul), dtype=np.uint32), np.empty(max(1, int(lengths.max(initial=0))), dtype=np.uint32)

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
        keys = np.empty((len(lengths), self.bands), dtype=np.uint64)  # each row set by the kernel
        _fold_band_keys(*self._kernel_input(flat, lengths), self._band_seed, self.rows, keys, *self._work_space(lengths))
        return keys


class SharedKeys:
    """Which of a key column's keys (uniform 64-bit hashes, such as band keys) may occur more than once,
    for clustering, which needs only those: every key seen twice, and the few others (about one in
    eight) whose top bits another key has. Two bitmaps of ~8 bits a key, filled by one pass over the
    column (`add`, in batches of any size), then asked in a second (`possibly_shared`): a third of
    the CPU of a DuckDB aggregate and semi-join per column (fetches included), and no more of the
    column in memory than a batch."""

    def __init__(self, count: int) -> None:
        self._bits = max(16, int(count).bit_length() + 3)
        self._seen, self._twice = np.zeros(1 << (self._bits - 3), dtype=np.uint8), np.zeros(1 << (self._bits - 3), dtype=np.uint8)

    def add(self, keys: np.ndarray) -> None:
        _mark_keys(np.ascontiguousarray(keys, dtype=np.uint64), self._seen, self._twice, self._bits)

    def possibly_shared(self, keys: np.ndarray) -> np.ndarray:
        """A mask over `keys` (all `add`ed before): True where the key may occur more than once."""
        return _in_twice(np.ascontiguousarray(keys, dtype=np.uint64), self._twice, self._bits)


@numba.njit(nogil=True, cache=True)
def _mark_keys(keys: np.ndarray, seen: np.ndarray, twice: np.ndarray, bits: int) -> None:
    shift = np.uint64(64 - bits)
    for key in keys:
        slot = np.int64(key >> shift)
        byte, bit = slot >> 3, np.uint8(1 << (slot & 7))
        if seen[byte] & bit:
            twice[byte] |= bit
        seen[byte] |= bit


@numba.njit(nogil=True, cache=True)
def _in_twice(keys: np.ndarray, twice: np.ndarray, bits: int) -> np.ndarray:
    shift = np.uint64(64 - bits)
    kept = np.empty(len(keys), dtype=np.bool_)
    for i in range(len(keys)):
        slot = np.int64(keys[i] >> shift)
        kept[i] = (twice[slot >> 3] >> (slot & 7)) & 1
    return kept


def cluster(keys: np.ndarray) -> np.ndarray:
    """For a (n, bands) key matrix: for each row, the index of the earliest row in its connected
    component (rows connected when they share a key in the same column; transitive)."""
    keys = np.asarray(keys)
    if keys.ndim != 2:
        raise ValueError(f"keys must be (rows, bands), got shape {keys.shape}")
    rows = np.arange(keys.shape[0])
    root = np.arange(keys.shape[0])
    joined, earliest = cluster_columns(((rows, column) for column in keys.T), keys.shape[0])
    root[joined] = earliest
    return root


def cluster_columns(columns: Iterable[tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """`cluster` of rows numbered below n, given one column at a time as (rows, their keys in that
    column), answered as the rows that are not the earliest of their component, with that earliest
    row. Rows whose key no other row shares may be left out, so a caller can pass only the shared
    keys and never hold a corpus's band keys in memory.

    Union-find done with arrays: each round hooks the root of every group member onto the smallest
    root in its group, then pointer-jumps until every row points at its root; rounds repeat until
    nothing moves. Only keys shared by >= 2 rows take part, which at dedup scale is a small fraction;
    the one array of n is 32-bit below 2^31 rows (40 MB at 10^7)."""
    index = np.int32 if n < 2**31 else np.int64
    members, starts, offset = [], [], 0
    for rows, column in columns:
        if not len(column):
            continue
        order = np.argsort(column, kind="stable")
        sorted_keys = column[order]
        new = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
        group = np.cumsum(new) - 1
        shared = np.bincount(group)[group] >= 2
        members.append(np.asarray(rows)[order[shared]].astype(index))
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
    # a joined row is one of the members: its root is found there, not by comparing all n
    joined = np.unique(member)
    joined = joined[root[joined] != joined]
    return joined, root[joined]
