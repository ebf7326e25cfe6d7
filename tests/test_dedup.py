"""Normalised words, MinHash LSH band keys and their connected components."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from datakit.dedup import MinHasher, cluster, words

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = [
    "apple",
    "river",
    "stone",
    "cloud",
    "market",
    "window",
    "silver",
    "garden",
    "engine",
    "paper",
    "ocean",
    "violet",
    "planet",
    "candle",
    "forest",
    "mirror",
]


def text(seed: int, n: int = 60) -> str:
    rng = random.Random(seed)
    return " ".join(f"{rng.choice(VOCAB)}{rng.randrange(1000)}" for _ in range(n))


def test_words_ignore_case_punctuation_whitespace_and_unicode_width() -> None:
    assert words("Hello,   WORLD!!\tＦｕｌｌ-width x_y café 3.14 ½") == [
        "hello",
        "world",
        "full",
        "width",
        "x",
        "y",
        "café",
        "3",
        "14",
        "1",
        "2",
    ]
    assert words("What is 2+2?") == words("what  is 2 + 2") == ["what", "is", "2", "2"]
    assert words("") == words(" ... !!! ") == []


def test_identical_texts_share_every_band_key() -> None:
    keys = MinHasher().band_keys([text(1), text(2), text(1)])
    assert keys.shape == (3, 14) and keys.dtype == np.uint64
    assert (keys[0] == keys[2]).all() and not (keys[0] == keys[1]).any()


def test_a_near_duplicate_joins_its_original_and_unrelated_texts_stay_apart() -> None:
    original = text(0)
    tokens = original.split()
    tokens[1], tokens[-2] = "changed", "edited"  # 2 of 60 words: Jaccard of 5-word shingles 52/60
    near = "  ".join(tokens).upper().replace(" ", ", ", 5) + "!"
    texts = [text(7), original, text(8), near, text(9)]
    assert cluster(MinHasher().band_keys(texts)).tolist() == [0, 1, 2, 1, 4]


def test_signature_agreement_estimates_jaccard() -> None:
    """The fraction of equal MinHash values is an unbiased estimate of shingle-set Jaccard similarity."""
    hasher = MinHasher(shingle=1, bands=64, rows=4)
    pairs, jaccards = [], []
    rng = random.Random(3)
    for i in range(40):
        a = rng.sample(range(10_000), 100)
        b = a[: rng.randrange(10, 100)] + rng.sample(range(10_000, 20_000), rng.randrange(0, 90))
        pairs += [" ".join(map(str, a)), " ".join(map(str, b))]
        jaccards.append(len(set(a) & set(b)) / len(set(a) | set(b)))
    sig = hasher.signatures(pairs)
    agreement = (sig[0::2] == sig[1::2]).mean(axis=1)
    assert abs(agreement.mean() - np.mean(jaccards)) < 0.015
    assert np.abs(agreement - jaccards).max() < 0.13  # ~4 standard deviations at 256 values


def test_threshold_is_where_one_band_collides() -> None:
    assert MinHasher(bands=14, rows=8).threshold == pytest.approx(0.719, abs=1e-3)


def test_keys_are_the_same_in_another_process_with_another_hash_seed() -> None:
    texts = [text(0), "short one", "", text(5, 200)]
    script = f"import json; from datakit.dedup import MinHasher; print(json.dumps(MinHasher(seed=3).band_keys({texts!r}).tolist()))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == MinHasher(seed=3).band_keys(texts).tolist()
    assert json.loads(out) != MinHasher(seed=4).band_keys(texts).tolist()


def test_empty_and_short_texts() -> None:
    texts = ["", "Hello, world!", "hello world", "hello there", "?!", "hello world and a longer text around it"]
    keys = MinHasher().band_keys(texts)
    same = (keys[:, None, :] == keys[None, :, :]).any(axis=2)
    # empty texts match each other only; a text shorter than a shingle is one shingle, compared whole
    assert same[0].tolist() == [True, False, False, False, True, False]
    assert same[1].tolist() == [False, True, True, False, False, False]
    assert not same[3, [0, 1, 2, 4, 5]].any()
    assert MinHasher().band_keys([]).shape == (0, 14)


def test_cluster_is_transitive_with_the_earliest_row_as_representative() -> None:
    keys = np.array(
        [
            [1, 100],  # 0: alone
            [5, 200],  # 1: A
            [6, 300],  # 2: C
            [5, 300],  # 3: B shares column 0 with A and column 1 with C
            [200, 5],  # 4: A's keys in the other columns: no link
            [6, 400],  # 5: C again
        ],
        dtype=np.uint64,
    )
    assert cluster(keys).tolist() == [0, 1, 1, 1, 4, 1]
    assert cluster(np.zeros((0, 3), np.uint64)).tolist() == []


def test_minhash_signatures_are_the_plain_formula() -> None:
    """The compiled kernel (32-bit SIMD lanes) against the formula in Python integers: per permutation,
    the least x ^ (x >> 15), x = (h ^ xor) * mul mod 2^32, over a text's shingle hashes h (top 32 bits)."""
    from datakit.dedup import gram_hashes, word_hashes

    hasher = MinHasher()
    texts = [text(3), "one two", "", "a b c d e", text(4, 12), "same same same same same same", text(5) * 3]
    flat, lengths = word_hashes([words(t) for t in texts])
    signatures = hasher.hashed_signatures(flat, lengths)
    hashes, owner, _ = gram_hashes(flat, lengths, hasher.shingle, whole_if_shorter=True)

    def permuted(h: int, xor: int, mul: int) -> int:
        x = ((h ^ xor) * mul) % 2**32
        return x ^ (x >> 15)

    assert all(mul % 2 for mul in hasher._mul.tolist())  # odd: a bijection of 32-bit values
    for t in range(len(texts)):
        shingles = [h >> 32 for h in hashes[owner == t].tolist()]
        expected = [min((permuted(h, xor, mul) for h in shingles), default=2**64 - 1) for xor, mul in zip(hasher._xor.tolist(), hasher._mul.tolist())]
        assert signatures[t].tolist() == expected, texts[t]


def test_minhash_collides_as_often_as_jaccard_similarity_says() -> None:
    """What MinHash LSH promises, measured on random shingle sets of known Jaccard similarity J: each
    permutation's minima agree with probability J, independently across permutations (the spread of the
    agreeing share is binomial), and a pair shares a band key with probability 1 - (1 - J^rows)^bands."""
    hasher = MinHasher(shingle=1)  # one word, one shingle: the sets are exactly the words
    rng = np.random.default_rng(7)
    pairs, size = 3000, 40
    for shared in (16, 27, 33, 36):
        similarity = shared / (2 * size - shared)
        texts = []
        for _ in range(pairs):
            common = rng.integers(0, 2**63, shared, dtype=np.uint64)
            texts += [np.concatenate([common, rng.integers(0, 2**63, size - shared, dtype=np.uint64)]) for _ in range(2)]
        flat, lengths = np.concatenate(texts), np.full(len(texts), size, dtype=np.int64)
        signatures = hasher.hashed_signatures(flat, lengths)
        agree = (signatures[0::2] == signatures[1::2]).mean(axis=1)
        k = hasher.bands * hasher.rows
        assert abs(agree.mean() - similarity) < 4 * np.sqrt(similarity * (1 - similarity) / k / pairs)
        assert abs(agree.std() / np.sqrt(similarity * (1 - similarity) / k) - 1) < 0.1  # independent permutations
        keys = hasher.hashed_band_keys(flat, lengths)
        collide = (keys[0::2] == keys[1::2]).any(axis=1).mean()
        expected = 1 - (1 - similarity**hasher.rows) ** hasher.bands
        assert abs(collide - expected) < 4 * np.sqrt(expected * (1 - expected) / pairs) + 0.005, (similarity, collide, expected)


def reference_components(keys: np.ndarray) -> list[int]:
    """Plain union-find, for comparison."""
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for column in keys.T:
        first: dict[int, int] = {}
        for row, key in enumerate(column.tolist()):
            a, b = find(first.setdefault(key, row)), find(row)
            parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(len(keys))]


@pytest.mark.parametrize("seed", range(5))
def test_cluster_matches_a_plain_union_find(seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 60, size=(300, 3)).astype(np.uint64)  # dense collisions: long chains
    assert cluster(keys).tolist() == reference_components(keys)


@pytest.mark.parametrize("size", [0, 1, 1000, 200_000])
def test_shared_keys_keeps_every_repeated_key_and_few_others(size: int) -> None:
    """The filter before clustering: any key seen twice is kept (a miss would let a duplicate through),
    and of the keys seen once only a bucket's collisions, well under a fifth."""
    from datakit.dedup import SharedKeys

    rng = np.random.default_rng(size)
    unique = rng.integers(0, 2**64, size=size, dtype=np.uint64)
    repeated = unique[rng.integers(0, max(size, 1), size=size // 20)] if size else unique[:0]
    keys = rng.permutation(np.concatenate([unique, repeated, repeated[: len(repeated) // 2]]))
    filter = SharedKeys(len(keys))
    for batch in np.array_split(keys, 3):  # the column comes in batches
        filter.add(batch)
    kept = np.concatenate([filter.possibly_shared(batch) for batch in np.array_split(keys, 4)])
    values, counts = np.unique(keys, return_counts=True)
    shared = np.isin(keys, values[counts > 1])
    assert kept[shared].all()
    assert kept[~shared].mean() < 0.2 if size > 1 else not kept.any()


def test_the_column_path_gives_the_words_hashes_and_band_keys_of_the_python_path() -> None:
    """The mix splits and hashes a whole file's prompts at once (ASCII ones by a compiled scan of the
    bytes); what it gets must be exactly `word_hashes` of `words` and `band_keys`, whatever the script."""
    import polars as pl

    from datakit.dedup import text_word_hashes, word_hashes

    texts = [
        text(1), "Hello,   WORLD!!\tx_y 3.14", "", " ... !!! ", "Ｆｕｌｌ-width café ½ x²",
        "हिन्दी में लिखिए", "İstanbul ǅemal ΣΊΣΥΦΟΣ", "what is 2+2?\n" * 3, text(2, 5), "tab\tnew\nline\x1fsep",
        "Z" * 40 + " [a]`b{c}@d~e^f_g", None, "x" * 1000,
    ]
    series = pl.Series(texts, dtype=pl.String)
    for batch in (series, series.slice(3, 6), series.slice(5, 1), series.filter(series.is_null() | (series == "")), series.slice(0, 0)):
        flat, lengths = text_word_hashes(batch)
        expected_flat, expected_lengths = word_hashes([words(t or "") for t in batch.to_list()])
        assert np.array_equal(flat, expected_flat) and np.array_equal(lengths, expected_lengths), batch.to_list()
    flat, lengths = text_word_hashes(series)
    hasher = MinHasher(seed=5)
    assert np.array_equal(hasher.hashed_band_keys(flat, lengths), hasher.band_keys([t or "" for t in texts]))


def test_the_compiled_xxh64_is_xxhash_for_any_bytes() -> None:
    """The ASCII scan hashes words with its own xxh64: it must give xxhash's value for every length
    (each branch: below 4, 4-7, 8-31 and 32+ bytes, and the tails after 32-byte stripes)."""
    from xxhash import xxh64_intdigest

    from datakit.dedup import xxh64_span

    rng = np.random.default_rng(0)
    for size in [*range(72), 100, 127, 128, 129, 1000]:
        for seed in (0, 7, 2**64 - 1):
            data = rng.integers(0, 256, size=size, dtype=np.uint8)
            padded = np.concatenate([rng.integers(0, 256, size=3, dtype=np.uint8), data, rng.integers(0, 256, size=3, dtype=np.uint8)])
            assert xxh64_span(padded, 3, 3 + size, np.uint64(seed)) == xxh64_intdigest(data.tobytes(), seed)
        assert xxh64_span(data, 0, size) == xxh64_intdigest(data.tobytes())  # seed 0 when none is given


def test_prefixed_keys_are_xxhash_of_prefix_and_text() -> None:
    """The mix's draw keys: xxh64 of a source's name and each prompt id, as xxhash gives it for the
    Python string, for any text (non-ASCII, empty, long, null as empty) and a sliced column."""
    from xxhash import xxh64_intdigest

    from datakit.dedup import prefixed_keys

    texts = ["p1", "", "é中🙂", "x" * 200, None, "tail"]
    for prefix, seed in (("src\x00", 0), ("ünï\x00", 12345), ("", 3)):
        expected = [xxh64_intdigest((prefix + (t or "")).encode(), seed) for t in texts]
        assert prefixed_keys(pl.Series(texts), prefix, seed).tolist() == expected
        assert prefixed_keys(pl.Series(texts).slice(2, 3), prefix, seed).tolist() == expected[2:5]


def test_text_hashes_are_xxhash_of_answer_seeded_with_reasoning() -> None:
    """`text_hash`, which sample and filter write and the mix trusts: the mix's compiled column-wise hash
    equals the one-row one, the column of those (sample's and filter's) and xxhash's own, for any text (non-ASCII, empty, stripe-long, a sliced column);
    null where either text is; and reasoning and answer are not interchangeable."""
    from xxhash import xxh64_intdigest

    from datakit.dedup import text_hashes
    from datakit.schema import text_hash, text_hash_column

    reasoning = ["Let me think.", "", "é中🙂 " * 9, "x" * 200, None, "tail", "ab"]
    answer = ["42", "", "ünï", "y" * 33, "a", None, ""]
    expected = [None if r is None or a is None else xxh64_intdigest(a.encode(), seed=xxh64_intdigest(r.encode())) for r, a in zip(reasoning, answer)]
    assert text_hashes(pl.Series(reasoning), pl.Series(answer)).to_list() == expected
    assert [text_hash(r, a) for r, a in zip(reasoning[:4], answer[:4])] == expected[:4]
    assert text_hash_column(pl.DataFrame({"reasoning": reasoning, "answer": answer})).to_list() == expected
    assert text_hashes(pl.Series(reasoning).slice(2, 3), pl.Series(answer).slice(2, 3)).to_list() == expected[2:5]
    assert text_hash("ab", "") != text_hash("", "ab") and text_hash("a", "b") != text_hash("ab", "")


def test_sequence_keys_tell_word_sequences_apart() -> None:
    from datakit.dedup import sequence_keys, word_hashes

    texts = [["a", "b"], ["b", "a"], ["a", "b"], [], ["ab"], ["a", "b", "c"], []]
    keys = sequence_keys(*word_hashes(texts)).tolist()
    assert keys[0] == keys[2] and keys[3] == keys[6]
    assert len({keys[i] for i in (0, 1, 3, 4, 5)}) == 5


def test_a_batch_has_the_signatures_of_its_texts_taken_one_by_one() -> None:
    """A large batch is cut in two and run on two threads: no text's signature may change for it."""
    texts = [text(seed, n=seed % 90 + 1) for seed in range(400)] + ["", "one"]
    hasher = MinHasher(seed=2)
    batch = hasher.signatures(texts)
    assert batch.shape == (len(texts), 112) and sum(map(len, map(words, texts))) > 8 * 1024
    assert np.array_equal(batch, np.vstack([hasher.signatures([t]) for t in texts]))


def reference_gram_hashes(flat: list[int], lengths: list[int], m: int, whole_if_shorter: bool) -> list[tuple[int, int, int]]:
    """`gram_hashes` written out in Python integers, one gram at a time: (hash, text, start)."""
    from datakit.dedup import _LENGTH, _POSITION, mix64

    mask, out, at = (1 << 64) - 1, [], 0
    for t, n in enumerate(lengths):
        grams = [(s, m) for s in range(n - m + 1)] if n >= m else [(0, n)] if whole_if_shorter and n else []
        for s, size in grams:
            h = size * int(_LENGTH) & mask
            for j in range(size):
                h = (h + flat[at + s + j] * int(_POSITION[j])) & mask
            out.append((int(mix64(np.array([h], dtype=np.uint64))[0]), t, s))
        at += n
    return out


@pytest.mark.parametrize("seed", range(4))
def test_gram_hashes_are_the_written_out_formula_and_a_sieve_only_drops(seed: int) -> None:
    """The compiled gram hashes (dedup, decontamination) against the formula in plain Python, for every
    gram length and texts shorter, equal to and longer than it; a sieve keeps exactly the grams whose
    top bits it marks."""
    from datakit.dedup import gram_hashes

    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 12, size=30)
    flat = rng.integers(0, 2**64, size=int(lengths.sum()), dtype=np.uint64)
    for m in (1, 3, 5, 8):
        for whole in (False, True):
            hashes, text, start = gram_hashes(flat, lengths, m, whole)
            expected = reference_gram_hashes(flat.tolist(), lengths.tolist(), m, whole)
            assert list(zip(hashes.tolist(), text.tolist(), start.tolist())) == expected
            sieve = rng.random(1 << 4) < 0.5
            kept = gram_hashes(flat, lengths, m, whole, sieve=sieve)
            assert list(zip(*(a.tolist() for a in kept))) == [g for g in expected if sieve[g[0] >> 60]]
