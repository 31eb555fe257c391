"""The daily rollup of the routing log (table route_rollup), written with every log row.

A cold dashboard or `r42 stats` over a month would otherwise group every row of the month (SQLite
groups by sorting: ~0.3 s per 100,000 rows). Instead each routes row also adds itself, in the same
transaction, to a few rollup cells: one per (UTC day, user, dimension, value) for the dimensions
the panels split by (model, mode, domain). A cell holds exact sums (requests, errors, tokens, cost,
the savings inputs, first and last time; model cells also requests per complexity tenth) and the
answered requests' latencies (model cells also their times to first token) as
a Dist: the values themselves while a cell has at most EXACT_MAX of them, else counts in fixed
log-spaced bins RATIO wide, so a percentile read from them is within BOUND (2 %) of the exact one
(for latencies from MIN_MS to MAX_MS).

Days are the bucket because they compress: at 100,000 requests a month (~140 an hour over 5 users,
7 models, 4 modes, 6 domains) an hourly cell holds about 4 requests, a daily one about 100.
Totals, users and days come from the model cells (each row is in exactly one), providers from the
model names. A cell without latencies is written by one additive upsert; one with latencies is read,
changed and written back under a version number (compare-and-set), which is safe on any SQL store.

Pruning deletes the cells of the days that went and rebuilds the day the cut falls in from its
remaining rows (rebuild_days); the migration that made the table fills it from the rows already there.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import orjson

from r42.store.db import lock, where_clause

DAY_S = 86_400
COMPLEXITY_BINS = 10
EXACT_MAX = 32  # a cell keeps its latencies exactly up to this many, then as binned counts
RATIO = 1.04  # each bin spans [RATIO**i, RATIO**(i+1)) ms; reported at its geometric middle
BOUND = math.sqrt(RATIO) - 1  # the largest relative error of a binned value (1.98 %)
DIST_DIMS = ("model", "mode", "domain")  # cells that hold latencies (model cells also TTFT)
CX_FIELDS = tuple(f"cx{i}" for i in range(COMPLEXITY_BINS))  # requests per complexity tenth (model cells)
SUM_FIELDS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cmp_input",
    "cmp_output",
    "cmp_cost",
    *CX_FIELDS,
)
KEY = ("day", "user_key", "dim", "value")
_LOG_RATIO = math.log(RATIO)


# ---- keys: NULL never takes part in a unique key, so None and a value are told apart by a prefix ----


def encode(value: Any) -> str:
    return "" if value is None else "=" + str(value)


def decode(key: str) -> str | None:
    return None if key == "" else key[1:]


def day_of(ts: float) -> int:
    return int(math.floor(ts / DAY_S)) * DAY_S


def complexity_bin(complexity: float | None) -> int | None:
    """The tenth a complexity falls in, as the SQL over the rows computes it (clamped to 0..9)."""
    if complexity is None:
        return None
    if complexity >= 1:
        return COMPLEXITY_BINS - 1
    if complexity <= 0:
        return 0
    return int(complexity * COMPLEXITY_BINS)


def _real(value: Any) -> Any:
    """SQLite stores a float NaN as NULL: the rollup must count it as the rows do."""
    return None if isinstance(value, float) and math.isnan(value) else value


# ---- Dist: latencies, exact while few, else log-binned ----------------------------------------
#
# Binned counts live in one Python int, FIELD_BITS bits per bin (bin MIN_BIN - 1 in the lowest
# field: latencies below MIN_MS, reported as 0.0): adding two distributions is one big-int addition
# in C, and a cell stores only the fields from its lowest to its highest used bin (a BLOB).

MIN_MS, MAX_MS = 0.001, 1e8  # the binned range; below counts as 0, above as MAX_MS
MIN_BIN = math.floor(math.log(MIN_MS) / _LOG_RATIO)
MAX_BIN = math.floor(math.log(MAX_MS) / _LOG_RATIO)
FIELD_BITS = 64
FIELD_BYTES = FIELD_BITS // 8


def field_of(value: float) -> int:
    """The field (0: below MIN_MS) of a latency's bin."""
    if not value >= MIN_MS:  # NaN too
        return 0
    if value >= MAX_MS:
        return MAX_BIN - MIN_BIN + 1
    return math.floor(math.log(value) / _LOG_RATIO) - MIN_BIN + 1


def field_value(index: int) -> float:
    """What a bin's values are reported as: its geometric middle (0.0 below MIN_MS)."""
    return 0.0 if index == 0 else RATIO ** (index + MIN_BIN - 1 + 0.5)


@dataclass
class Dist:
    """A multiset of latencies: `exact` values and `packed` bin counts (FIELD_BITS per bin)."""

    exact: list[float] = field(default_factory=list)
    packed: int = 0

    def counts(self) -> list[tuple[int, int]]:
        """(field, count) of every used bin."""
        if not self.packed:
            return []
        low, data = _used_fields(self.packed)
        return [(low + i, c) for i, c in enumerate(memoryview(data).cast("Q")) if c]

    def __len__(self) -> int:
        return len(self.exact) + sum(c for _, c in self.counts())

    def copy(self) -> Dist:
        return Dist(list(self.exact), self.packed)

    def add(self, other: Dist) -> None:
        self.exact.extend(other.exact)
        self.packed += other.packed

    def percentiles(self, ps: Iterable[int]) -> dict[str, float | None]:
        """Nearest-rank percentiles (as stats.percentile): exact when no value is binned, else
        within BOUND of the exact figure for latencies in [MIN_MS, MAX_MS] (each value moves by at
        most that factor, and so does every order statistic)."""
        ps = tuple(ps)
        if not self.packed:
            self.exact.sort()  # in place: already sorted lists cost one pass
            n = len(self.exact)
            return {f"p{p}": (self.exact[_rank(p, n) - 1] if n else None) for p in ps}
        points = sorted([(v, 1) for v in self.exact] + [(field_value(i), c) for i, c in self.counts()])
        n = sum(c for _, c in points)
        out: dict[str, float | None] = {}
        for p in ps:
            rank, seen = _rank(p, n), 0
            for value, count in points:
                seen += count
                if seen >= rank:
                    out[f"p{p}"] = value
                    break
        return out

    def stored(self) -> tuple[str | None, bytes | None]:
        """The (exact, bins) columns of a cell: the values up to EXACT_MAX of them, else all binned."""
        if not self.packed and len(self.exact) <= EXACT_MAX and all(map(math.isfinite, self.exact)):  # JSON: finite
            return (orjson.dumps(self.exact).decode() if self.exact else None), None
        packed = self.packed
        for value in self.exact:
            packed += 1 << (field_of(value) * FIELD_BITS)
        low, body = _used_fields(packed)
        return None, low.to_bytes(2, "little") + body

    @staticmethod
    def loads(text: str | None, blob: bytes | None) -> Dist:
        exact = orjson.loads(text) if text else []
        if not blob:
            return Dist(exact)
        low = int.from_bytes(blob[:2], "little")
        return Dist(exact, int.from_bytes(blob[2:], "little") << (low * FIELD_BITS))


def _used_fields(packed: int) -> tuple[int, bytes]:
    """The lowest used field of non-zero bin counts and the fields from it to the highest used
    one, FIELD_BYTES each, little-endian."""
    low = ((packed & -packed).bit_length() - 1) // FIELD_BITS
    high = (packed.bit_length() - 1) // FIELD_BITS
    return low, (packed >> (low * FIELD_BITS)).to_bytes((high - low + 1) * FIELD_BYTES, "little")


def _rank(p: int, n: int) -> int:
    return max(1, (p * n + 99) // 100)


# ---- cells: what one routes row adds ---------------------------------------------------------


@dataclass
class Cell:
    """The sums and latencies one or more rows add to one rollup cell."""

    sums: list[float]
    first: float
    last: float
    latency: Dist | None = None  # only for DIST_DIMS cells
    ttft: Dist | None = None  # only for model cells

    def add(self, other: Cell) -> None:
        for index, value in enumerate(other.sums):
            self.sums[index] += value
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        for name in ("latency", "ttft"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is not None:
                if mine is None:
                    setattr(self, name, theirs.copy())
                else:
                    mine.add(theirs)


def cells_of(row: dict[str, Any]) -> dict[tuple[int, str, str, str], Cell]:
    """The cells one routes row (a dict of its columns) adds to, and what it adds."""
    row = {name: _real(value) for name, value in row.items()}
    ok = row["status"] == "ok"
    tokens_in, tokens_out, cost = row["input_tokens"] or 0, row["output_tokens"] or 0, row["cost_usd"]
    comparable = ok and cost is not None and bool(tokens_in or tokens_out)  # as stats._comparable
    sums: list[float] = [
        1,
        0 if ok else 1,
        tokens_in,
        tokens_out,
        cost or 0.0,
        tokens_in if comparable else 0,
        tokens_out if comparable else 0,
        cost if comparable else 0.0,
    ]
    day, user, ts = day_of(row["ts"]), encode(row["user"]), row["ts"]
    latency = [row["latency_ms"]] if ok and row["latency_ms"] is not None else []
    ttft = [row["ttft_ms"]] if ok and row["ttft_ms"] is not None else []
    no_cx: list[float] = [0] * COMPLEXITY_BINS
    cx = list(no_cx)
    index = complexity_bin(row["complexity"])
    if index is not None:
        cx[index] = 1
    out = {}
    for dim in DIST_DIMS:  # each cell its own Dists: build() adds into them
        out[(day, user, dim, encode(row[dim]))] = Cell(
            sums + (cx if dim == "model" else no_cx),
            ts,
            ts,
            Dist(list(latency)),
            Dist(list(ttft)) if dim == "model" else None,
        )
    return out


UPSERT = (
    f"INSERT INTO route_rollup ({', '.join(KEY + SUM_FIELDS)}, first_ts, last_ts)"
    f" VALUES ({', '.join('?' * (len(KEY) + len(SUM_FIELDS) + 2))})"
    f" ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET "
    + ", ".join(f"{f} = route_rollup.{f} + excluded.{f}" for f in SUM_FIELDS)
    + ", first_ts = CASE WHEN excluded.first_ts < route_rollup.first_ts"
    " THEN excluded.first_ts ELSE route_rollup.first_ts END"
    ", last_ts = CASE WHEN excluded.last_ts > route_rollup.last_ts THEN excluded.last_ts ELSE route_rollup.last_ts END"
)
WHERE_KEY = " AND ".join(f"{k} = ?" for k in KEY)


def add_cells(conn: sqlite3.Connection, cells: dict[tuple[int, str, str, str], Cell]) -> None:
    """Add cells to the table: those without latencies by one additive upsert, the others by
    read, change, write back (_add_with_dists).

    On a server database the rollup is written by one transaction at a time (an advisory lock
    until commit). Key order alone does not keep writers from deadlocking: a cell one writer
    upserts another writes back with latencies, and a write-back that lost to another writer is
    retried after later cells were locked. Several servers' log writers then waited a second for
    PostgreSQL's deadlock detector and wrote their batches again one row at a time."""
    if not cells:
        return
    lock(conn, "rollup")
    ordered = sorted(cells.items())
    plain = [(*key, *cell.sums, cell.first, cell.last) for key, cell in ordered if not _has_dists(cell)]
    if plain:
        conn.executemany(UPSERT, plain)
    _add_with_dists(conn, [(key, cell) for key, cell in ordered if _has_dists(cell)])


def _has_dists(cell: Cell) -> bool:
    return any(d is not None and (d.exact or d.packed) for d in (cell.latency, cell.ttft))


INSERT_WITH_DISTS = (
    f"INSERT INTO route_rollup ({', '.join(KEY + SUM_FIELDS)}, first_ts, last_ts, latency, latency_bins, ttft,"
    f" ttft_bins) VALUES ({', '.join('?' * (len(KEY) + len(SUM_FIELDS) + 6))})"
    f" ON CONFLICT ({', '.join(KEY)}) DO NOTHING"
)
UPDATE_WITH_DISTS = (
    "UPDATE route_rollup SET "
    + ", ".join(f"{f} = {f} + ?" for f in SUM_FIELDS)
    + ", first_ts = CASE WHEN ? < first_ts THEN ? ELSE first_ts END"
    ", last_ts = CASE WHEN ? > last_ts THEN ? ELSE last_ts END"
    ", latency = ?, latency_bins = ?, ttft = ?, ttft_bins = ?, version = version + 1"
    f" WHERE {WHERE_KEY} AND version = ?"
)


SELECT_DISTS = f"SELECT latency, latency_bins, ttft, ttft_bins, version FROM route_rollup WHERE {WHERE_KEY}"


def _add_with_dists(conn: sqlite3.Connection, cells: list[tuple[tuple[int, str, str, str], Cell]]) -> None:
    # Read the cells, then write each back only if no one else wrote it meanwhile (its version; a
    # new cell: only if no one inserted it meanwhile), else read that one again. In SQLite's write
    # transaction and under add_cells' lock no one can: the versions guard what writes the table
    # without the lock (an older r42 sharing the database). Every read is sent before
    # the first is looked at, every write before the first count is: in PostgreSQL's pipeline mode
    # (a batch) that is one round trip for the reads and one for the writes, however many cells.
    for _ in range(100):
        if not cells:
            return
        reads = [conn.execute(SELECT_DISTS, key) for key, _ in cells]
        writes = [conn.execute(*_written_back(key, cell, read.fetchone())) for (key, cell), read in zip(cells, reads)]
        cells = [item for item, write in zip(cells, writes) if not write.rowcount]
    if cells:
        raise sqlite3.OperationalError("the rollup cell kept changing under this writer")


def _written_back(key: tuple[int, str, str, str], cell: Cell, found: tuple | None) -> tuple[str, tuple]:
    """The statement and parameters that write `cell` added to the stored one (`found`: its
    latencies and version; None: not stored yet)."""
    latency = Dist() if found is None else Dist.loads(found[0], found[1])
    ttft = Dist() if found is None else Dist.loads(found[2], found[3])
    if cell.latency is not None:
        latency.add(cell.latency)
    if cell.ttft is not None:
        ttft.add(cell.ttft)
    dists = (*latency.stored(), *ttft.stored())
    if found is None:
        return INSERT_WITH_DISTS, (*key, *cell.sums, cell.first, cell.last, *dists)
    return UPDATE_WITH_DISTS, (*cell.sums, cell.first, cell.first, cell.last, cell.last, *dists, *key, found[4])


_collecting = threading.local()


def add_row(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    """Add one routes row (a dict of its columns) to the rollup, in the caller's transaction
    (inside deferred(): to the cells it collects)."""
    pending = getattr(_collecting, "cells", None)
    if pending is None:
        add_cells(conn, cells_of(row))
    else:
        _gather(pending, cells_of(row))


@contextmanager
def deferred(conn: sqlite3.Connection) -> Iterator[None]:
    """Collect the cells of the rows written inside on this thread and add them once each at the
    end, in conn's transaction: the gateway's log writer writes a batch of rows in one transaction,
    and most of a batch's rows share their day, user and model. An error adds nothing (the caller's
    transaction rolls back)."""
    cells: dict[tuple[int, str, str, str], Cell] = {}
    _collecting.cells = cells
    try:
        yield
    finally:
        _collecting.cells = None
    add_cells(conn, cells)


def _gather(into: dict[tuple[int, str, str, str], Cell], cells: dict[tuple[int, str, str, str], Cell]) -> None:
    for key, cell in cells.items():
        if key in into:
            into[key].add(cell)
        else:
            into[key] = cell


# ---- building from rows: the migration's backfill, and the days a prune cut into ---------------

ROW_COLUMNS = ("ts", "user", "model", "mode", "domain", "complexity", "status") + (
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
)


def build(conn: sqlite3.Connection, since: float | None = None, until: float | None = None) -> None:
    """Add the routes rows in [since, until) to the rollup, a day at a time (memory stays bounded)."""
    where, params = where_clause({"ts >= ?": since, "ts < ?": until})
    cursor = conn.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM routes {where} ORDER BY ts", params)
    pending: dict[tuple[int, str, str, str], Cell] = {}
    day = None
    for values in cursor:
        row = dict(zip(ROW_COLUMNS, values))
        if day is not None and day_of(row["ts"]) != day:
            add_cells(conn, pending)
            pending = {}
        day = day_of(row["ts"])
        _gather(pending, cells_of(row))
    add_cells(conn, pending)


def rebuild_days(conn: sqlite3.Connection, first_day: int, last_day: int) -> None:
    """Make the cells of days first_day..last_day (inclusive) those of the rows now there."""
    lock(conn, "rollup")
    conn.execute("DELETE FROM route_rollup WHERE day >= ? AND day <= ?", (first_day, last_day))
    build(conn, first_day, last_day + DAY_S)


def pruned(conn: sqlite3.Connection, cutoff: float) -> None:
    """The rows before `cutoff` were deleted: drop the days wholly before it, rebuild the one it cuts."""
    cut_day = day_of(cutoff)
    lock(conn, "rollup")
    conn.execute("DELETE FROM route_rollup WHERE day < ?", (cut_day,))
    if cut_day < cutoff:
        rebuild_days(conn, cut_day, cut_day)


def backfill(conn: sqlite3.Connection) -> None:
    """Fill the rollup from every routes row (the migration that creates the table runs this)."""
    conn.execute("DELETE FROM route_rollup")
    build(conn)
