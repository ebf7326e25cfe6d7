"""The mix's plan, out of core: which rows are removed (and why), which are chosen, and where each goes.

The index pass leaves one Parquet file of rows and one of prompts per source file (`_work/index/`).
DuckDB joins, groups and ranks over them under a fixed memory cap, spilling to `_work/` past it, so
a mix of 10^7 samples plans in the memory a mix of 10^4 needs. What comes into Python is either as
large as the output (the chosen rows' ids, for the seeded shuffle) or one MinHash band at a time
(near-duplicate clustering). Every ordering ends on the global row number `_i`, so a re-run after a
kill plans exactly what the killed run planned.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa
import xxhash

from datakit.arrow_buffers import integers
from datakit.dedup import SharedKeys, cluster_columns, mix64
from datakit.threads import in_parallel

if TYPE_CHECKING:
    import duckdb

    from datakit.mix import MixConfig

MEMORY_LIMIT = "256MB"  # DuckDB's share of the mix's memory; joins and sorts past it spill to _work/spill
WRITING_MEMORY_LIMIT = "64MB"  # its share while the rows are written: it only looks up each group of files' plan
ROWS, PROMPTS = "rows", "prompts"  # the index files: _work/index/rows-NNNNN.parquet, prompts-NNNNN.parquet
KEY_BUCKET_BITS = 12  # a quota's draw ranks only the candidates whose key shares the top bits of its last one
REMOVED_COLUMNS = ["removed_by", "removed_reason", "duplicate_of", "decontam_benchmark", "decontam_item", "decontam_ngram"]


@contextmanager
def plan_database(work: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB database in memory that spills to `work/spill` past its cap (a plan is cheap to redo and
    deterministic, so nothing of it is kept; it takes disk only where it spills)."""
    import duckdb

    work.mkdir(parents=True, exist_ok=True)
    settings = {"memory_limit": MEMORY_LIMIT, "threads": len(os.sched_getaffinity(0)), "temp_directory": str(work / "spill"), "preserve_insertion_order": False}
    con = duckdb.connect(":memory:", config=settings)
    try:
        yield con
    finally:
        con.close()


def index_files(index: Path, kind: str) -> str:
    """A SQL literal listing the index files of `kind` (rows or prompts)."""
    files = sorted(str(p) for p in index.glob(f"{kind}-*.parquet"))
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def repeated_keys(con: duckdb.DuckDBPyConnection, index: Path) -> pl.DataFrame:
    """Rows whose (prompt_id, sample_index) an earlier row of the same source has, in row order: their
    `_i`, src, unit, row, key, and where the first copy is (`first_unit`, `first_row`). A key repeats
    rarely, so only the keys seen twice are joined back."""
    con.execute(f"CREATE OR REPLACE VIEW indexed AS SELECT * FROM read_parquet({index_files(index, ROWS)})")
    return con.sql(
        """
        WITH keys AS (SELECT src, prompt_id, sample_index, min(_i) AS first FROM indexed GROUP BY ALL HAVING count(*) > 1)
        SELECT r._i, r.src, r.unit, r.row, r.prompt_id, r.sample_index, f.unit AS first_unit, f.row AS first_row
        FROM indexed r JOIN keys k USING (src, prompt_id, sample_index) JOIN indexed f ON f._i = k.first
        WHERE r._i <> k.first ORDER BY r._i
        """
    ).pl()


@dataclass
class Plan:
    """The plan, held in the database: table `fate` (every valid row, with removed_by... where removed)
    and table `located` (one row per output row: position, _i, copy_index, src, unit, row)."""

    con: duckdb.DuckDBPyConnection
    rows_out: int
    available: dict[tuple[str, str], int]  # candidate rows per (kind, domain) after removals and caps
    written_per_file: dict[tuple[int, int], int]  # chosen and removed rows per (src, unit), where any are

    def written_count(self, src: int, unit: int) -> int:
        return self.written_per_file.get((src, unit), 0)

    def chosen(self, first: int, end: int) -> pl.DataFrame:
        """The chosen rows among the rows numbered [first, end) (`_i`, so consecutive files): _i, row,
        position, copy_index; by file, then position."""
        query = "SELECT _i, row, position, copy_index FROM located WHERE _i >= $1 AND _i < $2 ORDER BY src, unit, position"
        return self._fetch(query, first, end)

    def repeats(self) -> pl.DataFrame:
        """The samples removed as repeats of another (src, unit, row) and their originals' (first_src,
        first_unit, first_row); none without exact dedup."""
        if not self.con.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'repeats'").fetchall()[0][0]:
            return pl.DataFrame(schema={c: pl.Int64 for c in ("src", "unit", "row", "first_src", "first_unit", "first_row")})
        return self._fetch("SELECT src, unit, row, first_src, first_unit, first_row FROM repeats ORDER BY _i")

    def keep_only_what_writing_reads(self) -> None:
        """Once the report is drawn and the repeats checked, the write pass reads `located` and `removed`
        alone, a group of files' rows at a time: the rest is dropped and DuckDB's cap lowered, so what it
        holds goes to its spill files and the memory to the writing threads (~170 MB at 10^7 samples)."""
        _drop(self.con, "fate", "prompt_removed", "repeats")
        self.con.execute(f"SET memory_limit = '{WRITING_MEMORY_LIMIT}'")

    def removed(self, first: int, end: int) -> pl.DataFrame:
        """The removed rows among the rows numbered [first, end): _i, row and why, by _i."""
        query = f"SELECT _i, row, {', '.join(REMOVED_COLUMNS)} FROM removed WHERE _i >= $1 AND _i < $2 ORDER BY _i"
        return self._fetch(query, first, end)

    def _fetch(self, query: str, *params: int) -> pl.DataFrame:
        """`query` on a cursor of its own (callers run on threads), closed at once: a cursor left to the
        garbage collector keeps the database, and the spill files it has open, alive after the mix."""
        with self.con.cursor() as cursor:
            return cursor.sql(query, params=list(params)).pl()


def plan_mix(config: MixConfig, con: duckdb.DuckDBPyConnection, index: Path, repeated: pl.DataFrame, names: list[str]) -> Plan:
    """Decide every row's fate: removed (and why), chosen (at which output positions), or left out."""
    con.register("source_names_arrow", pl.DataFrame({"src": range(len(names)), "name": names}, schema={"src": pl.UInt16, "name": pl.String}).to_arrow())
    con.register("repeated_arrow", repeated.select("_i").to_arrow())
    con.execute("CREATE OR REPLACE TABLE source_names AS SELECT * FROM source_names_arrow")
    con.execute(f"CREATE OR REPLACE VIEW valid AS SELECT * FROM read_parquet({index_files(index, ROWS)}) ANTI JOIN repeated_arrow USING (_i)")
    _prompt_removals(config, con, index)
    con.execute(
        f"""CREATE OR REPLACE TABLE fate AS SELECT v.*, {', '.join('pr.' + c for c in REMOVED_COLUMNS)}
        FROM valid v LEFT JOIN prompt_removed pr USING (src, prompt_id)"""
    )
    if config.dedup.exact:
        _drop_repeated_samples(con)
    cap = f"QUALIFY row_number() OVER (PARTITION BY src, prompt_id ORDER BY random_key, _i) <= {int(config.max_per_prompt)}" if config.max_per_prompt else ""
    con.execute(f"CREATE OR REPLACE TABLE candidate AS SELECT _i, kind, domain, random_key, shuffle_key, src, unit, row FROM fate WHERE removed_by IS NULL {cap}")
    available = {(k, d): n for k, d, n in con.sql("SELECT kind, domain, count(*) FROM candidate GROUP BY ALL").fetchall()}
    _fill_quotas(config, con)
    con.execute(
        """CREATE OR REPLACE TABLE located AS
        SELECT row_number() OVER (ORDER BY shuffle_key, _i) - 1 AS position, _i, copy_index, src, unit, row FROM picks ORDER BY src, unit, position"""
    )
    _drop(con, "candidate", "taken", "picks")
    con.execute(f"CREATE OR REPLACE TABLE removed AS SELECT _i, src, unit, row, {', '.join(REMOVED_COLUMNS)} FROM fate WHERE removed_by IS NOT NULL ORDER BY src, unit, row")
    for name in ("source_names_arrow", "repeated_arrow"):
        con.unregister(name)
    rows_out = con.sql("SELECT count(*) FROM located").fetchall()[0][0]
    written = con.sql("SELECT src, unit, count(*) FROM (SELECT src, unit FROM located UNION ALL SELECT src, unit FROM removed) GROUP BY ALL").fetchall()
    return Plan(con, rows_out, available, {(src, unit): n for src, unit, n in written})


def _drop(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    """Tables the rest of the plan does not read, dropped at once: what DuckDB holds under its cap is
    what it need not spill (at 10^6 samples, keeping them all made the plan spill: +15% time)."""
    for table in tables:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _prompt_removals(config: MixConfig, con: duckdb.DuckDBPyConnection, index: Path) -> None:
    """Table `prompt_removed`: per removed prompt (src, prompt_id), contaminated or a duplicate of an
    earlier prompt (exact or near; the earliest source and row wins), with the reason."""
    # a prompt is indexed once per source file it appears in (usually one): its first appearance stands
    con.execute(f"CREATE OR REPLACE VIEW prompts AS SELECT * FROM read_parquet({index_files(index, PROMPTS)})")
    con.execute(
        """CREATE OR REPLACE TABLE prompt AS
        WITH again AS (SELECT src, prompt_id, min(first_i) AS first FROM prompts GROUP BY ALL HAVING count(*) > 1)
        SELECT p.* FROM prompts p LEFT JOIN again a USING (src, prompt_id) WHERE a.first IS NULL OR p.first_i = a.first"""
    )
    # numbered by the row of their first appearance (no sort): clustering keeps each component's earliest prompt
    con.execute("CREATE OR REPLACE TABLE clean AS SELECT first_i AS c, src, prompt_id, prompt_key FROM prompt WHERE decontam_benchmark IS NULL")
    numbers = con.sql("SELECT coalesce(max(c) + 1, 0) FROM clean").fetchall()[0][0]
    duplicate, rep = cluster_columns(_shared_columns(con, config), numbers)
    con.register("dups_arrow", pl.DataFrame({"c": duplicate, "rep": rep}, schema={"c": pl.UInt64, "rep": pl.UInt64}).to_arrow())
    con.execute(
        f"""CREATE OR REPLACE TABLE prompt_removed AS
        SELECT src, prompt_id, 'contaminated' AS removed_by,
               format('{{}} {{}}: shares the {{}}-gram "{{}}"', decontam_benchmark, decontam_item, {int(config.decontamination.n)}, decontam_ngram) AS removed_reason,
               NULL::VARCHAR AS duplicate_of, decontam_benchmark, decontam_item, decontam_ngram
        FROM prompt WHERE decontam_benchmark IS NOT NULL
        UNION ALL
        SELECT d.src, d.prompt_id, if(d.prompt_key = r.prompt_key, 'exact_duplicate', 'near_duplicate'),
               format('prompt {{}} duplicates {{}}', if(d.prompt_key = r.prompt_key, 'exactly', 'nearly'), n.name || ':' || r.prompt_id),
               n.name || ':' || r.prompt_id, NULL, NULL, NULL
        FROM dups_arrow x JOIN clean d ON d.c = x.c JOIN clean r ON r.c = x.rep JOIN source_names n ON n.src = r.src"""
    )
    con.unregister("dups_arrow")
    _drop(con, "prompt", "clean", "bands")


def _shared_columns(con: duckdb.DuckDBPyConnection, config: MixConfig) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per key column clustering reads (the exact key, then each MinHash band), the clean prompts whose
    key another prompt may share. An exact duplicate has its original's bands: with exact dedup on, the
    bands are searched without the exact duplicates, for the same components from far fewer rows
    (table `bands`, made once for all bands)."""
    later = np.empty(0, np.uint64)
    if config.dedup.exact:
        rows, keys = _shared_keys(con, "prompt_key", "clean")
        yield rows, keys
        order = np.lexsort((rows, keys))
        rows, keys = rows[order], keys[order]
        later = rows[1:][keys[1:] == keys[:-1]]  # all of a key's rows but its first
    if not config.dedup.near:
        return
    con.register("exact_duplicates_arrow", pl.DataFrame({"c": later}, schema={"c": pl.UInt64}).to_arrow())
    columns = ", ".join(f"band{band}" for band in range(config.dedup.bands))
    con.execute(
        f"""CREATE OR REPLACE TABLE bands AS SELECT first_i AS c, {columns} FROM prompt
        WHERE decontam_benchmark IS NULL AND first_i NOT IN (SELECT c FROM exact_duplicates_arrow)"""
    )
    con.unregister("exact_duplicates_arrow")
    # read and sieved two at a time on threads (DuckDB, numba and numpy let go of the GIL) while clustering
    # sorts the one before; clustering comes to the same components in any order of the columns
    yield from in_parallel(lambda band: _shared_keys(con, f"band{band}", "bands"), range(config.dedup.bands), 2)


def _shared_keys(con: duckdb.DuckDBPyConnection, column: str, prompts: str) -> tuple[np.ndarray, np.ndarray]:
    """The `prompts` (`c`) whose key in `column` another of them may share (dedup.SharedKeys), with that
    key: the only ones clustering needs, a small fraction of a corpus. The column is read twice, a
    batch at a time: once to learn its keys, once to keep the rows it needs (on a cursor of its own:
    columns are read on threads)."""
    with con.cursor() as cursor:
        shared = SharedKeys(cursor.sql(f"SELECT count(*) FROM {prompts}").fetchall()[0][0])
        for batch in _batches(cursor, f"SELECT {column} FROM {prompts}"):
            shared.add(integers(batch.column(0)))
        rows, keys = [np.zeros(0, np.uint64)], [np.zeros(0, np.uint64)]
        for batch in _batches(cursor, f"SELECT c, {column} FROM {prompts}"):
            c, key = integers(batch.column(0)), integers(batch.column(1))
            kept = shared.possibly_shared(key)
            rows.append(c[kept])
            keys.append(key[kept])
    return np.concatenate(rows), np.concatenate(keys)


def _batches(con: duckdb.DuckDBPyConnection, query: str, rows: int = 2**16) -> Iterator[pa.RecordBatch]:
    """`query`'s result as Arrow batches of up to `rows` rows (DuckDB buffers a few batches ahead: larger
    ones hold ~100 MB more at 10^7 prompts for no gain)."""
    yield from con.sql(query).to_arrow_reader(rows)


def _drop_repeated_samples(con: duckdb.DuckDBPyConnection) -> None:
    """A sample whose reasoning and answer are already in the mix for the same prompt text adds
    nothing: keep its first copy. Table `repeats` keeps each pair (the repeat's src, unit, row and its
    original's, as first_*) for checking against the text (mix.check_repeats)."""
    con.execute(
        """CREATE OR REPLACE TABLE repeats AS
        WITH firsts AS (SELECT sample_key, min(_i) AS first FROM fate WHERE removed_by IS NULL GROUP BY sample_key HAVING count(*) > 1)
        SELECT f._i, f.src, f.unit, f.row, o.src AS first_src, o.unit AS first_unit, o.row AS first_row,
               n.name || ':' || o.prompt_id || '#' || o.sample_index AS label
        FROM fate f JOIN firsts k USING (sample_key) JOIN fate o ON o._i = k.first JOIN source_names n ON n.src = o.src
        WHERE f.removed_by IS NULL AND f._i <> k.first"""
    )
    con.execute(
        """UPDATE fate SET removed_by = 'exact_duplicate', removed_reason = 'sample repeats ' || repeats.label, duplicate_of = repeats.label
        FROM repeats WHERE fate._i = repeats._i"""
    )


def _fill_quotas(config: MixConfig, con: duckdb.DuckDBPyConnection) -> None:
    """Table `picks` (_i, copy_index, shuffle_key, and the row's src, unit, row): each (kind, domain)
    quota's rows, the lowest random keys; drawn again (copy_index 1, 2, ...) only with replacement."""
    quotas = [(kind, domain, quota) for kind, domains in config.quotas.items() for domain, quota in domains.items()]
    con.register("quotas_arrow", pl.DataFrame([(q, *quota) for q, quota in enumerate(quotas)], orient="row",
                                              schema={"q": pl.Int64, "kind": pl.String, "domain": pl.String, "quota": pl.Int64}).to_arrow())
    # Taking the lowest keys needs no sort of a whole group: its keys' top bits, counted, show below
    # which bucket every row is taken and in which one the quota ends; only that bucket is ranked.
    shift = 64 - KEY_BUCKET_BITS
    counts = con.sql(f"SELECT q.q, c.random_key >> {shift} AS bucket, count(*) AS n FROM candidate c JOIN quotas_arrow q USING (kind, domain) GROUP BY ALL").pl()
    cuts = _quota_cuts(counts, [quota for _, _, quota in quotas])
    con.register("cuts_arrow", cuts.to_arrow())
    con.execute(
        f"""CREATE OR REPLACE TABLE taken AS
        SELECT q.q, c._i, c.random_key, c.shuffle_key, c.src, c.unit, c.row FROM candidate c JOIN quotas_arrow q USING (kind, domain) JOIN cuts_arrow x USING (q)
        WHERE c.random_key >> {shift} < x.bucket
        UNION ALL
        SELECT q, _i, random_key, shuffle_key, src, unit, row FROM (
            SELECT q.q, c._i, c.random_key, c.shuffle_key, c.src, c.unit, c.row, x.rest,
                   row_number() OVER (PARTITION BY q.q ORDER BY c.random_key, c._i) AS rank
            FROM candidate c JOIN quotas_arrow q USING (kind, domain) JOIN cuts_arrow x USING (q)
            WHERE c.random_key >> {shift} = x.bucket)
        WHERE rank <= rest"""
    )
    for name in ("quotas_arrow", "cuts_arrow"):
        con.unregister(name)
    con.execute("CREATE OR REPLACE TABLE picks AS SELECT _i, 0::INTEGER AS copy_index, shuffle_key, src, unit, row FROM taken")
    if not config.replacement:
        return
    for q, got in con.sql("SELECT q, count(*) FROM taken GROUP BY q ORDER BY q").fetchall():
        kind, domain, quota = quotas[q]
        if short := quota - got:
            group = con.sql("SELECT _i, random_key, src, unit, row FROM taken WHERE q = $1 ORDER BY random_key, _i", params=[q]).pl()
            rng = np.random.default_rng([config.seed, xxhash.xxh64_intdigest(f"{kind}/{domain}".encode())])
            extra = group[rng.integers(0, group.height, size=short)].with_columns(copy_index=(pl.int_range(pl.len()).over("_i") + 1).cast(pl.Int32))
            extra = extra.with_columns(shuffle_key=pl.Series(shuffle_keys(extra["random_key"].to_numpy(), extra["copy_index"].to_numpy(), config.seed), dtype=pl.UInt64))
            con.register("extra_arrow", extra.to_arrow())
            con.execute("INSERT INTO picks SELECT _i, copy_index, shuffle_key, src, unit, row FROM extra_arrow")
            con.unregister("extra_arrow")


def _quota_cuts(counts: pl.DataFrame, quotas: list[int]) -> pl.DataFrame:
    """Per quota `q`, from its candidates counted by key bucket: the `bucket` below which all are taken
    and how many of that bucket's lowest keys complete the quota (`rest`); a quota that takes every
    candidate gets a bucket above all."""
    cuts = []
    for (q,), group in counts.sort("bucket").group_by(["q"], maintain_order=True):
        before = np.cumsum(group["n"].to_numpy()) - group["n"].to_numpy()  # candidates in lower buckets
        ending = np.flatnonzero(before + group["n"].to_numpy() >= quotas[q])
        if len(ending):
            cuts.append((q, int(group["bucket"][int(ending[0])]), quotas[q] - int(before[ending[0]])))
        else:
            cuts.append((q, 1 << KEY_BUCKET_BITS, 0))
    return pl.DataFrame(cuts, schema={"q": pl.Int64, "bucket": pl.UInt64, "rest": pl.Int64}, orient="row")


def shuffle_keys(random_keys: np.ndarray, copy_index: np.ndarray | int, seed: int) -> np.ndarray:
    """The seeded shuffle's sort keys: output positions follow a mix of each row's random key and copy
    number (computed as rows are indexed, so the plan only sorts by it)."""
    copies = np.broadcast_to(np.asarray(copy_index, dtype=np.uint64), random_keys.shape)
    return mix64(random_keys ^ mix64(copies + np.uint64(seed)))


def summary(plan: Plan, config: MixConfig, names: list[str]) -> dict[str, Any]:
    """The plan's counts for the report: per source, per removal reason and benchmark, per quota, examples."""
    con = plan.con
    per_source = {s: (indexed, removed) for s, indexed, removed in con.sql("SELECT src, count(*), count(removed_by) FROM fate GROUP BY src").fetchall()}
    chosen = dict(con.sql("SELECT src, count(*) FROM located GROUP BY src").fetchall())
    by_reason = dict(con.sql("SELECT removed_by, count(*) FROM removed GROUP BY ALL").fetchall())
    by_benchmark = dict(con.sql("SELECT decontam_benchmark, count(*) FROM removed WHERE removed_by = 'contaminated' GROUP BY ALL").fetchall())
    taken = {(k, d): (n, copies) for k, d, n, copies in con.sql(
        "SELECT f.kind, f.domain, count(*), count(*) FILTER (WHERE l.copy_index > 0) FROM located l JOIN fate f USING (_i) GROUP BY ALL").fetchall()}

    def examples(reason: str, columns: list[str]) -> list[dict[str, Any]]:
        return con.sql(f"SELECT {', '.join(columns)} FROM fate WHERE removed_by = $1 ORDER BY _i LIMIT 5", params=[reason]).pl().to_dicts()

    return {
        "sources": [{"indexed": per_source.get(s, (0, 0))[0], "removed": per_source.get(s, (0, 0))[1], "chosen": chosen.get(s, 0)} for s in range(len(names))],
        "removed": {r: by_reason.get(r, 0) for r in ("exact_duplicate", "near_duplicate", "contaminated")},
        "by_benchmark": by_benchmark,
        "taken": taken,
        "examples": {
            "contaminated": examples("contaminated", ["prompt_id", "decontam_benchmark", "decontam_item", "decontam_ngram"]),
            "near_duplicate": examples("near_duplicate", ["prompt_id", "duplicate_of"]),
        },
    }
