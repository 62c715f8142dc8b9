"""
C{BENCHMARKS.md}: the figures of a run as Markdown (pure: results in, text out).

C{results} is what L{bench.run} gathers::

    {"meta": {...}, "settings": {...}, "errors": [...], "profiles": {name: markdown},
     "runs": {workload: {store: [one dict of figures per run]}}}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.stats import Summary, formatNumber

KB = 1024.0
MB = 1024.0 * 1024.0


@dataclass(frozen=True)
class Row:
    """One line of a workload's table."""

    label: str
    key: str
    digits: int = 0
    unit: str = ""
    scale: float = 1.0
    #: C{(">=", value)} or C{("<=", value)} in displayed units, or C{None}
    target: tuple[str, float] | None = None
    targetText: str = ""


def verdict(value: float, target: tuple[str, float] | None) -> str:
    """C{"met"}, C{"missed by N%"} (relative to the target), or C{""} without a target."""
    if target is None:
        return ""
    if math.isnan(value):
        return "not measured"
    op, bound = target
    if op == ">=":
        if value >= bound:
            return "met"
        return f"**missed** by {100.0 * (bound - value) / bound:.0f}%"
    if value <= bound:
        return "met"
    if bound == 0:
        return f"**missed** ({formatNumber(value)})"
    return f"**missed** by {100.0 * (value - bound) / bound:.0f}% (×{value / bound:.1f})"


def shortError(text: str, limit: int = 300) -> str:
    """The first line of an error and, for a traceback, its last line."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    short = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
    return short if len(short) <= limit else short[: limit - 1] + "…"


def summary(runs: Sequence[dict[str, Any]], key: str, scale: float = 1.0) -> Summary:
    values = []
    for run in runs:
        v = run.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            values.append(float(v) / scale)
    return Summary.of(values)


def table(rows: Sequence[Row], byStore: dict[str, list[dict[str, Any]]]) -> str:
    stores = [s for s in ("postgresql", "sqlite") if byStore.get(s)]
    names = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
    head = "| | " + " | ".join(names[s] for s in stores) + " | target | verdict (PostgreSQL) |"
    out = [head, "|---|" + "---:|" * len(stores) + "---|---|"]
    for row in rows:
        cells = []
        primary = math.nan
        for store in stores:
            s = summary(byStore[store], row.key, row.scale)
            if store == stores[0]:
                primary = s.median
            cells.append(s.format(row.digits, row.unit))
        out.append(
            f"| {row.label} | "
            + " | ".join(cells)
            + f" | {row.targetText} | {verdict(primary, row.target)} |"
        )
    return "\n".join(out)


INGEST = [
    Row("records committed and acknowledged /s", "rate", 0, "", 1, (">=", 50_000), "≥ 50 000"),
    Row("ack latency p50", "p50", 1, "ms"),
    Row("ack latency p99", "p99", 1, "ms"),
    Row("server CPU during the run", "serverCpu", 1, "s"),
    Row("server CPU share (1.0 = one core)", "serverShare", 2),
    Row("database CPU during the run", "dbCpu", 1, "s"),
    Row("load generators' CPU during the run", "loadgenCpu", 1, "s"),
    Row("CPU of other processes on the machine meanwhile", "otherCpu", 1, "s"),
    Row("whole machine busy (2.0 = both cores)", "machineShare", 2),
    Row("rows in the table afterwards", "committed", 0),
    Row("ceiling: plain multi-row INSERT … ON CONFLICT, rows/s", "ceilingInsert", 0),
    Row("ceiling: COPY, rows/s", "ceilingCopy", 0),
    Row("ours / multi-row INSERT ceiling", "ratio", 2, "", 1, (">=", 0.5), "≥ 0.5"),
    Row("ours / COPY ceiling", "ratioCopy", 2, "", 1, (">=", 0.5), "≥ 0.5"),
]

CONNECTIONS = [
    Row("terminals registered", "connected", 0),
    Row(
        "time until all registered (30 s = not all within the 30 s bound)",
        "connectSeconds",
        2,
        "s",
        1,
        ("<=", 10),
        "≤ 10 s",
    ),
    Row("registration time p50 / terminal", "connectP50", 2, "s"),
    Row("registration time p99 / terminal", "connectP99", 2, "s"),
    Row("failed connection attempts", "connectFailures", 0, "", 1, ("<=", 0), "0"),
    Row("server RSS before", "rssBase", 1, "MiB", MB),
    Row("server RSS with all connected", "rssLoaded", 1, "MiB", MB),
    Row("memory per connection", "perConnection", 1, "KiB", KB, ("<=", 20), "< 20 KB"),
    Row("server CPU to accept and register all", "connectServerCpu", 1, "s"),
    Row("load generators' CPU for it", "connectLoadgenCpu", 1, "s"),
]

STORM = [
    Row(
        "time until all registered again (30 s = not all within the bound)",
        "stormSeconds",
        2,
        "s",
        1,
        ("<=", 10),
        "< 10 s",
    ),
    Row("registration time p50 / terminal", "stormP50", 2, "s"),
    Row("registration time p99 / terminal", "stormP99", 2, "s"),
    Row("registered again", "stormRegistered", 0),
    Row("failed attempts (refused, reset, timed out)", "stormFailures", 0, "", 1, ("<=", 0), "0"),
    Row("terminals that gave up (5 attempts)", "stormGaveUp", 0, "", 1, ("<=", 0), "0"),
    Row("server CPU during the storm", "stormServerCpu", 1, "s"),
]

COMMANDS = [
    Row("registered terminals the commands went to", "commandTargets", 0),
    Row("wait for the server to settle first (≤ 20 s)", "settleSeconds", 1, "s"),
    Row("sequential: p50", "cmdSeqP50", 1, "ms"),
    Row("sequential: p99", "cmdSeqP99", 1, "ms", 1, ("<=", 20), "< 20 ms"),
    Row("sequential: commands/s", "cmdSeqRate", 0),
    Row("20 concurrent callers: p50", "cmdConP50", 1, "ms"),
    Row("20 concurrent callers: p99", "cmdConP99", 1, "ms", 1, ("<=", 20), "< 20 ms"),
    Row("20 concurrent callers: commands/s", "cmdConRate", 0),
    Row("errors (non-200 or not succeeded)", "cmdSeqErrors", 0),
    Row("errors, concurrent", "cmdConErrors", 0),
]

BACKFILL = [
    Row("getalllog pull: time for all", "pullSeconds", 2, "s", 1, ("<=", 10), "< 10 s"),
    Row("getalllog pull: records stored /s", "pullRate", 0),
    Row("getalllog pull: records stored", "pullInserted", 0),
    Row("sendlog push: time for all", "pushSeconds", 2, "s"),
    Row("sendlog push: records /s", "pushRate", 0),
    Row("sendlog push: records acknowledged", "pushAcked", 0),
    Row("rows in the tables afterwards (pull + push)", "committed", 0),
]

WEBHOOKS = [
    Row("ingest: records acknowledged /s", "ingestRate", 0),
    Row("events delivered /s", "deliveredRate", 0),
    Row("delivered / ingest rate", "keepUp", 2, "", 1, (">=", 1.0), "≥ 1.0"),
    Row("events delivered (all log.created)", "delivered", 0),
    Row("HTTP requests (batches)", "requests", 0),
    Row("events per request", "perRequest", 1),
    Row("last delivery after the last ack (catch-up)", "catchUp", 2, "s"),
    Row("commit → delivery p50", "lagP50", 1, "ms"),
    Row("commit → delivery p99", "lagP99", 1, "ms"),
]

SOAK = [
    Row("terminals connected at the end", "stillConnected", 0),
    Row("server RSS at start", "rssStart", 1, "MiB", MB),
    Row("server RSS at end", "rssEnd", 1, "MiB", MB),
    Row("server RSS, highest sample", "rssMax", 1, "MiB", MB),
    Row("server CPU share (1.0 = one core)", "serverShare", 3),
    Row("database CPU share", "dbShare", 3),
    Row("load generators' CPU share", "loadgenShare", 3),
    Row("records acknowledged", "acked", 0),
    Row("ack latency p50", "p50", 1, "ms"),
    Row("ack latency p99", "p99", 1, "ms"),
    Row("batches refused (result:false)", "nacked", 0),
]


def _section(
    title: str, intro: str, rows: Sequence[Row], byStore: dict[str, list[dict[str, Any]]] | None
) -> list[str]:
    if not byStore:
        return []
    return [f"### {title}", "", intro, "", table(rows, byStore), ""]


def render(full: dict[str, Any] | None, soak: dict[str, Any] | None, notes: str = "") -> str:
    """The whole C{BENCHMARKS.md}."""
    out = [
        "# tm20 benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run --full`); the idle soak by "
        "`make bench-soak`. Do not edit by hand: the figures are rewritten by each run; the "
        "analysis lives in `bench/NOTES.md` and is copied in below.",
        "",
        "Every figure is the **median of the runs, with the min–max in brackets**. The server is "
        "the real service (`twistd -n tm20`), driven over real loopback WebSocket connections by "
        "separate load-generator processes (`python -m bench.loadgen`, a lean raw-frame client); "
        "their CPU is reported so that a saturated load generator cannot pass unnoticed.",
        "",
    ]
    for name, results in (("full", full), ("soak", soak)):
        if results is None:
            continue
        meta = results.get("meta", {})
        out += [f"## Conditions ({name} run)", ""]
        for key, value in meta.items():
            out.append(f"- **{key}**: {value}")
        out.append("")
        for error in results.get("errors", []):
            out.append(f"- **error**: {shortError(error)}")
        out.append("")
    if full is not None:
        runs = full.get("runs", {})
        settings = full.get("settings", {})
        out += ["## Results", ""]
        out += _section(
            "1. Ingest",
            f"{settings.get('ingestTerminals')} terminals, each sending `sendlog` batches of "
            f"{settings.get('ingestBatch')} records and waiting for each ack, for "
            f"{settings.get('ingestSeconds')} s. The ceiling is measured in the same run, on the "
            "same database and table (emptied), after the server stopped: the fastest plain "
            "psycopg2 insert of the same rows (`execute_values`, 1 000 rows per statement and "
            "commit) and `COPY` (10 000 rows per commit); for SQLite, `executemany` of "
            "`INSERT OR IGNORE` with the store's settings (WAL, synchronous=FULL), 1 000 rows "
            "per commit.",
            INGEST,
            runs.get("ingest"),
        )
        out += _section(
            "2. Connections",
            f"{settings.get('connTerminals')} terminals connect and register at once (from "
            f"{settings.get('connWorkers')} load generators; 100 terminals per 127.x.y.z source "
            "address, as sites behind NAT, so the server's per-address limit (1 000) applies as "
            "in the field). Memory per connection = (RSS with all registered − RSS before) / "
            "terminals.",
            CONNECTIONS,
            runs.get("connections"),
        )
        out += _section(
            "3. Reconnect storm",
            "Right after (2): every terminal drops its socket at once (abort) and reconnects at "
            "once; a failed attempt is retried after 1 s, at most 5 attempts, as firmware does.",
            STORM,
            runs.get("connections"),
        )
        out += _section(
            "4. Command round trip",
            "After (3), once `GET /health` answers within 50 ms (at most 20 s): "
            "`POST /api/terminals/{sn}/command/` "
            '`{"command":"opendoor","params":{"doornum":1}}` to random registered terminals, '
            f"{settings.get('cmdSequential')} in sequence, then {settings.get('cmdConcurrency')} "
            f"callers × {settings.get('cmdPerClient')} at once; latency from the request to the "
            "response carrying the terminal's reply.",
            COMMANDS,
            runs.get("connections"),
        )
        out += _section(
            "5. Back-fill",
            f"One terminal holding {settings.get('backfillLogs')} stored logs: "
            '`POST /api/terminals/{sn}/logs/pull/ {"source":"all"}` pages through `getalllog` '
            "(50 a page) and stores every page before asking the next. Then a second terminal "
            f"holding the same logs pushes them as `sendlog` batches of "
            f"{settings.get('pushBatch')}, one in flight.",
            BACKFILL,
            runs.get("backfill"),
        )
        out += _section(
            "7. Webhooks",
            "The ingest workload (same terminals, batches and duration) with one webhook "
            "subscribed to every `log.created`, pointing to a receiver in its own process "
            "(`bench/receiver.py`) that answers 204 at once. Delivered rate = events received / "
            "(last − first arrival); catch-up = last arrival − last ack; lag = arrival − the "
            "event's `at` (written in the fact's transaction).",
            WEBHOOKS,
            runs.get("webhooks"),
        )
    if soak is not None:
        settings = soak.get("settings", {})
        out += _section(
            "6. Idle soak (`make bench-soak`)",
            f"{settings.get('soakTerminals')} connected terminals, one `sendlog` of one record "
            f"per terminal every {settings.get('soakInterval')} s, for "
            f"{settings.get('soakSeconds')} s.",
            SOAK,
            soak.get("runs", {}).get("soak"),
        )
    profiles = dict((full or {}).get("profiles", {}))
    if profiles:
        out += [
            "## Profiles",
            "",
            "py-spy samples of the server process during the first run (`make bench-deps` "
            "installs py-spy). *Self*: samples whose innermost frame is the function; "
            "*inclusive*: samples with the function anywhere on the stack; both as a share of "
            "the busy samples.",
            "",
        ]
        for name, text in profiles.items():
            out += [f"### {name}", "", text, ""]
    if notes:
        out += [notes.rstrip(), ""]
    return "\n".join(out)


__all__ = ["Row", "render", "shortError", "summary", "table", "verdict"]
