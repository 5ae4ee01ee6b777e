"""Benchmark: this project's aiocouch against aiocouch 4.0.1 and plain aiohttp.

``make bench`` runs this with the repository's ``.venv`` Python. It

1. starts a local pouchdb-server once (or uses ``COUCHDB_URL``, with ``COUCHDB_USER`` /
   ``COUCHDB_PASSWORD``), through ``testserver.pouchdb_server``;
2. creates ``bench/.venv-aiocouch401`` with ``aiocouch==4.0.1`` from PyPI on the first run
   (pinned to the aiohttp version of ``.venv``, so both libraries sit on the same aiohttp);
3. seeds the databases (plain aiohttp ``_bulk_docs``, not timed);
4. runs every workload for every client in a fresh process (``bench/worker.py``);
5. prints a Markdown table, writes ``bench/results.md``, ``bench/results.json`` and the
   chart ``docs/bench.png``.

Options: ``--n`` documents of the iterated database (``make bench BENCH_N=1000000``),
``--quick`` (or ``BENCH_QUICK=1``) for a smoke run of about a minute, ``--repeat`` (3 by
default, 1 with ``--quick``) runs each measurement that often, each time in a fresh process
and on a fresh database, and keeps the median; a failed run is not repeated. The repeats of
one workload take turns between the clients (round by round), so a slow spell of the
machine falls on all of them. ``--clients`` picks the clients (see ``bench/worker.py``;
``ours-no-retry`` and ``ours-session`` are not run by default), ``--workloads`` the
workloads, ``--no-save`` keeps the recorded results.

The exit status is 1 when this project or the aiohttp baseline failed a workload, or when
the clients did not do the same work (items or checksums differ); failures of aiocouch
4.0.1 are reported, not fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import quote

import worker

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORKER = BENCH / "worker.py"
VENV_401 = BENCH / ".venv-aiocouch401"
PYTHON_401 = VENV_401 / "bin" / "python"
RESULTS_MD = BENCH / "results.md"
RESULTS_JSON = BENCH / "results.json"
CHART = REPO / "docs" / "bench.png"

CLIENT_LABELS = {
    "ours": "this project",
    "aiocouch401": "aiocouch 4.0.1",
    "aiohttp": "aiohttp",
    "ours-no-retry": "this project, retry=False",
    "ours-session": "this project, SessionAuth",
}
#: The ratio columns of the CPU table, (heading, numerator, denominator), each shown when
#: both clients ran.
RATIOS = (
    ("ours / aiohttp", "ours", "aiohttp"),
    ("ours / 4.0.1", "ours", "aiocouch401"),
    ("defaults / retry=False", "ours", "ours-no-retry"),
    ("session / basic", "ours-session", "ours"),
)
#: Workloads whose CPU is summed up in the "mix total" row (all of them).
MIX = worker.WORKLOADS
#: Workloads that read the seeded N-document database.
READ_WORKLOADS = ("get", "get_concurrent", "iterate_all")
#: Workloads that write into a database seeded with ``count`` documents first.
SEEDED_WORKLOADS = ("update", "bulk_update")
#: Workloads after which the database must hold exactly ``count`` documents.
CREATE_WORKLOADS = ("create_save", "bulk_create")
WORKER_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does; ``n`` is the size of the iterated database."""

    n: int
    counts: dict[str, int]

    def count(self, workload: str) -> int:
        """Documents or requests of ``workload``."""
        return self.n if workload == "iterate_all" else self.counts[workload]


FULL_COUNTS = {
    "create_save": 500,
    "get": 500,
    "get_concurrent": 2_000,
    "update": 500,
    "bulk_create": 40_000,
    "bulk_update": 5_000,
}
QUICK_COUNTS = {
    "create_save": 100,
    "get": 100,
    "get_concurrent": 400,
    "update": 100,
    "bulk_create": 2_000,
    "bulk_update": 1_000,
}


@dataclass
class Run:
    """The (median) result of one workload for one client."""

    client: str
    workload: str
    count: int
    cpu_s: float = 0.0
    wall_s: float = 0.0
    rss_mb: float = 0.0
    requests: int = 0
    items: int = 0
    checksum: int = 0
    error: str | None = None
    library: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the workload ran to its end."""
        return self.error is None


# -- the server and plain HTTP set-up ------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """Where the benchmark sends its requests."""

    url: str
    user: str
    password: str


@contextlib.contextmanager
def bench_server() -> Iterator[Server]:
    """The server from ``COUCHDB_URL``, or a local pouchdb-server for the whole run."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from testserver.pouchdb_server import server_from_environment

    with server_from_environment() as server:
        yield Server(server.url, server.user, server.password)


def http(server: Server, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One untimed request with plain aiohttp; returns the status and the decoded JSON."""

    async def send() -> tuple[int, Any]:
        async with worker.client_session(server.user, server.password) as session:
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"}
            async with session.request(
                method, server.url + path, data=data, headers=headers
            ) as resp:
                return resp.status, json.loads(await resp.read() or b"null")

    return asyncio.run(send())


def seed_database(server: Server, name: str, count: int) -> None:
    """Creates the database ``name`` holding ``count`` documents ``doc-000001``..."""

    async def run() -> None:
        async with worker.client_session(server.user, server.password) as session:
            await worker.seed(session, f"{server.url}/{quote(name, safe='')}", count)

    asyncio.run(run())


def doc_count(server: Server, name: str) -> int | None:
    """``doc_count`` of the database ``name``, or None when it does not exist."""
    status, info = http(server, "GET", f"/{quote(name, safe='')}")
    return int(info["doc_count"]) if status == 200 else None


def delete_database(server: Server, name: str) -> None:
    """Deletes the database ``name`` (a missing one is fine)."""
    http(server, "DELETE", f"/{quote(name, safe='')}")


def ensure_read_database(server: Server, n: int) -> str:
    """``bench_iter_<n>`` with ``n`` documents; reused when it already has exactly that many."""
    name = f"bench_iter_{n}"
    if doc_count(server, name) == n:
        print(f"reusing {name}", flush=True)
        return name
    delete_database(server, name)
    started = time.perf_counter()
    print(f"seeding {name} with {n:,} documents ...", end=" ", flush=True)
    seed_database(server, name, n)
    print(f"{time.perf_counter() - started:.1f} s", flush=True)
    return name


# -- the aiocouch 4.0.1 environment --------------------------------------------------------


def ensure_venv_401() -> None:
    """Creates ``bench/.venv-aiocouch401`` with aiocouch 4.0.1 unless it is up to date."""
    requirements = ["aiocouch==4.0.1", f"aiohttp=={version('aiohttp')}"]
    stamp = VENV_401 / ".stamp-bench"
    if PYTHON_401.exists() and stamp.exists() and stamp.read_text().split() == requirements:
        return
    print(f"creating {VENV_401.relative_to(REPO)} with {' '.join(requirements)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV_401)], check=True)
    subprocess.run(
        [str(PYTHON_401), "-m", "pip", "install", "--quiet", *requirements],
        check=True,
        env=clean_environment(),
    )
    stamp.write_text("\n".join(requirements) + "\n")


# -- running the workers -------------------------------------------------------------------


def clean_environment() -> dict[str, str]:
    """This environment without PYTHONPATH and PYTHONHOME (src/ stays invisible to 4.0.1)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def worker_environment(server: Server) -> dict[str, str]:
    """The environment of a worker: clean, plus the server's credentials."""
    env = clean_environment()
    env["COUCHDB_USER"] = server.user
    env["COUCHDB_PASSWORD"] = server.password
    return env


def baseline_src(commit: str) -> Path:
    """Where this project's ``src/`` as of ``commit`` is exported for ``--baseline``."""
    return Path(tempfile.gettempdir()) / f"aiocouch-bench-{commit}" / "src"


@contextlib.contextmanager
def exported_baseline(commit: str) -> Iterator[str]:
    """Exports ``src/`` as of ``commit`` for the run; yields the client name ``ours@<hash>``."""
    short = subprocess.run(
        ["git", "rev-parse", "--short", f"{commit}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    root = baseline_src(short).parent
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        archive = subprocess.run(
            ["git", "archive", short, "src"], cwd=REPO, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
        yield f"ours@{short}"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def client_label(client: str) -> str:
    """The name of a client in the reports."""
    base, _, commit = client.partition("@")
    return f"this project at {commit}" if commit else CLIENT_LABELS[base]


def python_for(client: str) -> Path:
    """The interpreter a client runs in."""
    return PYTHON_401 if client == "aiocouch401" else Path(sys.executable)


def run_worker(server: Server, client: str, workload: str, db: str, sizes: Sizes) -> dict[str, Any]:
    """One fresh worker process (``python -I``: no script directory, no PYTHONPATH)."""
    base, _, commit = client.partition("@")
    command = [
        str(python_for(client)),
        "-I",
        str(WORKER),
        f"--client={base}",
        *([f"--src={baseline_src(commit)}"] if commit else []),
        f"--workload={workload}",
        f"--url={server.url}",
        f"--db={db}",
        f"--count={sizes.count(workload)}",
        f"--db-size={sizes.n}",
    ]
    process = subprocess.run(
        command,
        env=worker_environment(server),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
        check=False,
    )
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        tail = (process.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"worker exited with {process.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    if result.get("error"):
        print(process.stderr.rstrip(), file=sys.stderr)
    check_library(client, result)
    return result


def check_library(client: str, result: dict[str, Any]) -> None:
    """Fails loudly when a client ran with the wrong aiocouch."""
    path = Path(result.get("library_path", ""))
    _, _, commit = client.partition("@")
    src = baseline_src(commit) if commit else REPO / "src"
    if client.startswith("ours") and src not in path.parents:
        raise SystemExit(f"'{client}' imported aiocouch from {path}, not from {src}")
    if client == "aiocouch401" and (
        result.get("library") != "aiocouch 4.0.1" or VENV_401 not in path.parents
    ):
        raise SystemExit(f"'aiocouch401' imported {result.get('library')} from {path}")


def prepare_database(server: Server, workload: str, client: str, sizes: Sizes, read_db: str) -> str:
    """The database a run works on: the shared read database, or a fresh one."""
    if workload in READ_WORKLOADS:
        return read_db
    name = f"bench_{workload}_{client}_{uuid.uuid4().hex[:8]}"
    if workload in SEEDED_WORKLOADS:
        seed_database(server, name, sizes.count(workload))
    else:
        status, answer = http(server, "PUT", f"/{name}")
        if status not in (201, 202):
            raise SystemExit(f"PUT /{name} answered {status}: {answer}")
    return name


def measure_workload(
    server: Server, clients: Sequence[str], workload: str, sizes: Sizes, read_db: str, repeat: int
) -> list[Run]:
    """Runs one workload ``repeat`` times for each client; keeps the medians.

    Round by round, each round starting with the next client, so that neither a slow spell
    of the shared machine nor the order favours one client. A client that failed stops.
    """
    runs = [Run(client, workload, sizes.count(workload)) for client in clients]
    for round_number in range(repeat):
        turn = round_number % len(runs)
        for run in runs[turn:] + runs[:turn]:
            if not (run.samples and run.samples[-1].get("error")):
                run.samples.append(sample_run(server, run, sizes, read_db))
    for run in runs:
        summarize(run)
    return runs


def sample_run(server: Server, run: Run, sizes: Sizes, read_db: str) -> dict[str, Any]:
    """One measurement of ``run``'s workload and client, on a fresh database if it writes."""
    db = prepare_database(server, run.workload, run.client, sizes, read_db)
    try:
        sample = run_worker(server, run.client, run.workload, db, sizes)
        if run.workload in CREATE_WORKLOADS and not sample.get("error"):
            stored = doc_count(server, db)
            if stored != run.count:
                sample["error"] = f"database holds {stored} documents, not {run.count}"
    finally:
        if db != read_db:
            delete_database(server, db)
    return sample


def summarize(run: Run) -> None:
    """Fills ``run`` with the medians of its samples, or with the failed (last) one."""
    last = run.samples[-1]
    run.error = last.get("error")
    used = [last] if run.error else run.samples
    for name in ("cpu_s", "wall_s", "rss_mb"):
        setattr(run, name, statistics.median(float(s.get(name, 0.0)) for s in used))
    run.requests = int(used[0].get("requests", 0))
    run.items = int(used[0].get("items", 0))
    run.checksum = int(used[0].get("checksum", 0))
    run.library = str(last.get("library", ""))


def print_run(run: Run) -> None:
    """One progress line."""
    status = "ok" if run.ok else f"FAILED: {run.error}"
    print(
        f"  {run.workload:<15} {client_label(run.client):<26} cpu {run.cpu_s:8.3f} s  "
        f"wall {run.wall_s:8.3f} s  rss {run.rss_mb:8.1f} MB  requests {run.requests:>6}  "
        f"items {run.items:>8}  {status}",
        flush=True,
    )


def check_same_work(runs: Sequence[Run]) -> list[str]:
    """Problems: clients that finished a workload but processed other items or checksums."""
    problems = []
    for workload in {run.workload for run in runs}:
        done = [run for run in runs if run.workload == workload and run.ok]
        seen = {(run.items, run.checksum) for run in done}
        if len(seen) > 1:
            detail = ", ".join(f"{r.client}: {r.items} items, sum {r.checksum}" for r in done)
            problems.append(f"{workload}: the clients did different work ({detail})")
        for run in done:
            if run.items != run.count:
                problems.append(f"{workload}/{run.client}: {run.items} items, not {run.count}")
    return problems


# -- reporting -----------------------------------------------------------------------------


def find(runs: Sequence[Run], workload: str, client: str) -> Run | None:
    """The run of ``client`` on ``workload``, if it was measured."""
    return next((r for r in runs if r.workload == workload and r.client == client), None)


def ratio(numerator: Run | None, denominator: Run | None) -> str:
    """``numerator / denominator`` of client CPU.

    ``-`` when the numerator failed; an upper bound (``<=``) when only the denominator
    failed, since the CPU it spent until the failure is a lower bound of its cost.
    """
    if numerator is None or denominator is None or not numerator.ok:
        return "-"
    if denominator.cpu_s <= 0:
        return "-"
    value = f"{numerator.cpu_s / denominator.cpu_s:.2f}x"
    return value if denominator.ok else f"<= {value} (it failed)"


def cpu_cell(run: Run | None) -> str:
    """Client CPU seconds, or the CPU spent until a failure."""
    if run is None:
        return "-"
    return f"{run.cpu_s:.3f}" if run.ok else f"failed after {run.cpu_s:.3f}"


def detail_table(runs: Sequence[Run], clients: Sequence[str]) -> list[str]:
    """Every workload for every client: CPU (and its range), wall, peak RSS growth, requests."""
    lines = [
        "| workload | count | client | client CPU s | CPU range s | wall s | peak RSS MB "
        "| requests | result |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for workload in worker.WORKLOADS:
        for client in clients:
            run = find(runs, workload, client)
            if run is None:
                continue
            result = "ok" if run.ok else f"**failed**: {run.error}"
            lines.append(
                f"| {workload} | {run.count:,} | {client_label(client)} | {run.cpu_s:.3f} | "
                f"{cpu_range(run)} | {run.wall_s:.3f} | {run.rss_mb:.1f} | {run.requests:,} | "
                f"{result} |"
            )
    return lines


def cpu_range(run: Run) -> str:
    """The lowest and highest client CPU of the samples a median was taken of."""
    values = [float(s["cpu_s"]) for s in run.samples if not s.get("error")]
    return f"{min(values):.3f}-{max(values):.3f}" if len(values) > 1 else "-"


def cpu_table(runs: Sequence[Run], clients: Sequence[str]) -> list[str]:
    """Client CPU side by side, with the ratios of :data:`RATIOS` whose clients ran."""
    ratios = [
        *((h, top, bottom) for h, top, bottom in RATIOS if {top, bottom} <= set(clients)),
        *((f"ours / {c.partition('@')[2]}", "ours", c) for c in clients if "@" in c),
    ]
    lines = [
        "| workload | "
        + " | ".join([*(f"{client_label(c)} CPU s" for c in clients), *(h for h, _, _ in ratios)])
        + " |",
        "|---|" + "---:|" * (len(clients) + len(ratios)),
    ]
    for workload in worker.WORKLOADS:
        row = [find(runs, workload, c) for c in clients]
        if all(r is None for r in row):
            continue
        cells = [cpu_cell(r) for r in row]
        cells += [
            ratio(find(runs, workload, top), find(runs, workload, bottom))
            for _, top, bottom in ratios
        ]
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    if not set(MIX) <= {run.workload for run in runs}:
        return lines
    totals = {c: mix_total(runs, c) for c in clients}
    cells = [
        f"{total:.3f}" if complete else f">= {total:.3f} (failures)"
        for total, complete in totals.values()
    ]
    cells += [total_ratio(totals, top, bottom) for _, top, bottom in ratios]
    lines.append("| **mix total** | " + " | ".join(cells) + " |")
    return lines


def mix_total(runs: Sequence[Run], client: str) -> tuple[float, bool]:
    """Client CPU summed over the mix workloads; False when one failed or is missing."""
    mine = [find(runs, workload, client) for workload in MIX]
    total = sum(r.cpu_s for r in mine if r is not None)
    return total, all(r is not None and r.ok for r in mine)


def total_ratio(totals: dict[str, tuple[float, bool]], top: str, bottom: str) -> str:
    """Mix total of ``top`` over ``bottom``'s (an upper bound if ``bottom`` failed)."""
    if top not in totals or bottom not in totals:
        return "-"
    (mine, mine_complete), (theirs, theirs_complete) = totals[top], totals[bottom]
    if not mine_complete or theirs <= 0:
        return "-"
    value = f"**{mine / theirs:.2f}x**"
    return value if theirs_complete else f"<= {value}"


def targets(runs: Sequence[Run], sizes: Sizes) -> list[str]:
    """The issue's targets next to what was measured (reported, not asserted)."""
    lines = ["| target | measured | met |", "|---|---|---|"]
    iterate = find(runs, "iterate_all", "ours")
    iterate_401 = find(runs, "iterate_all", "aiocouch401")
    bulk = find(runs, "bulk_create", "ours")
    ours_total, ours_ok = mix_total(runs, "ours")
    plain_total, plain_ok = mix_total(runs, "aiohttp")

    def row(target: str, measured: str, met: bool | None) -> None:
        lines.append(
            f"| {target} | {measured} | {'-' if met is None else 'yes' if met else 'NO'} |"
        )

    if iterate is not None and iterate.ok:
        row(
            f"iterate_all ({sizes.n:,} docs): peak RSS growth <= 60 MB",
            f"{iterate.rss_mb:.1f} MB",
            iterate.rss_mb <= 60,
        )
        if iterate_401 is not None and iterate_401.ok and iterate_401.cpu_s > 0:
            share = iterate.cpu_s / iterate_401.cpu_s
            row("iterate_all: client CPU <= 0.5x aiocouch 4.0.1", f"{share:.2f}x", share <= 0.5)
        elif iterate_401 is not None:
            row("iterate_all: client CPU <= 0.5x aiocouch 4.0.1", "4.0.1 did not finish", None)
    if bulk is not None and bulk.ok:
        note = "" if bulk.count == 40_000 else f" (ran {bulk.count:,} docs)"
        row(
            "bulk_create of 40,000 docs: client CPU <= 2.5 s",
            f"{bulk.cpu_s:.3f} s{note}",
            bulk.cpu_s <= 2.5 if bulk.count == 40_000 else None,
        )
    if ours_ok and plain_ok and plain_total > 0:
        share = ours_total / plain_total
        row("mix total: client CPU <= 1.0x plain aiohttp", f"{share:.2f}x", share <= 1.0)
    return lines


def render_markdown(
    runs: Sequence[Run], clients: Sequence[str], sizes: Sizes, info: dict[str, Any]
) -> str:
    """The whole report as Markdown."""
    machine = info["machine"]
    head = [
        "# Benchmark: aiocouch (this project) vs aiocouch 4.0.1 vs plain aiohttp",
        "",
        f"Server: {machine['server']} at {machine['server_url']}; "
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"aiohttp {machine['aiohttp']}. Iterated database: {sizes.n:,} documents of about "
        "350 bytes. Client CPU = user + sys time of the client process during the workload "
        "only; peak RSS = growth of the peak resident set over the RSS just before it; "
        f"requests = requests sent. Median of {info['settings']['repeat']} run(s), each in a "
        f"fresh process. Whole run: {info['total_wall_s']:.0f} s.",
        "",
        "## Client CPU",
        "",
    ]
    body = [*cpu_table(runs, clients), "", "## Targets", "", *targets(runs, sizes)]
    details = ["", "## All measurements", "", *detail_table(runs, clients)]
    return "\n".join([*head, *body, *details, "", "## Notes", "", *notes(runs, machine), ""])


NOTES = [
    "- Every client runs in a fresh process; aiocouch 4.0.1 in `bench/.venv-aiocouch401` "
    "(same aiohttp version), with the same workload code as this project.",
    "- aiocouch 4.0.1 sends no `Accept: application/json`; pouchdb-server then answers "
    "`text/plain` and 4.0.1's `resp.json()` fails. The benchmark adds the header for 4.0.1 "
    "only, in an aiohttp `on_request_start` trace hook (a real CouchDB does not need it).",
    f"- The aiohttp client posts `_bulk_docs` in batches of {worker.BULK_BATCH:,} documents, "
    f"{worker.BULK_IN_FLIGHT} at a time, like this project's default `BulkOperation`; "
    "aiocouch 4.0.1 sends one request.",
    "- A failed run shows the CPU spent until the failure, a lower bound of its cost; "
    "ratios against it are upper bounds (`<=`).",
]
ORDER_NOTE = (
    "- aiocouch 4.0.1 matches `_bulk_docs` results to its documents by position and asserts "
    "equal ids (`bulk.py:106`). pouchdb-server answers some items out of request order "
    "(neighbours swapped), so 4.0.1's bulk operations fail against it with `AssertionError` "
    "after all the work is done; Apache CouchDB keeps the order. This project matches by id."
)

VARIANTS_NOTE = (
    "- `this project, retry=False` and `this project, SessionAuth` run the workload code of "
    "`this project` with `CouchDB(..., retry=False)` and with "
    "`CouchDB(..., auth=SessionAuth(user, password))` instead of basic auth; the session's "
    "login (`POST /_session`) is part of the untimed warm-up."
)


def notes(runs: Sequence[Run], machine: dict[str, Any]) -> list[str]:
    """How to read the numbers, and why aiocouch 4.0.1 failed where it did."""
    lines = list(NOTES)
    clients = {r.client for r in runs}
    if clients & {"ours-no-retry", "ours-session"}:
        lines.append(VARIANTS_NOTE)
    lines += [
        f"- `{client_label(c)}` is this project's `src/` as of commit {c.partition('@')[2]} "
        "(`--baseline`), run with the same workload code and virtual environment."
        for c in sorted(clients)
        if "@" in c
    ]
    order_failures = [
        r.workload
        for r in runs
        if r.client == "aiocouch401" and r.error and "bulk.py:106" in r.error
    ]
    if order_failures and str(machine.get("server", "")).startswith("pouchdb"):
        lines.append(f"{ORDER_NOTE} Failed here: {', '.join(order_failures)}.")
    return lines


def machine_info(server: Server) -> dict[str, Any]:
    """What the numbers depend on: CPU, Python, library and server versions."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    status, welcome = http(server, "GET", "/")
    vendor = welcome.get("vendor", {}) if isinstance(welcome, dict) else {}
    if isinstance(welcome, dict) and "express-pouchdb" in welcome:
        server_name = f"pouchdb-server {welcome.get('version', '?')}"
    elif isinstance(welcome, dict):
        server_name = f"CouchDB {welcome.get('version', '?')} ({vendor.get('name', '?')})"
    else:
        server_name = "unknown server"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "aiohttp": version("aiohttp"),
        "server": server_name,
        "server_url": server.url,
        "server_welcome": welcome if status == 200 else None,
    }


def write_chart(
    runs: Sequence[Run], clients: Sequence[str], path: Path, n: int, caption: str
) -> None:
    """Grouped bars of client CPU per workload, and the peak RSS of ``iterate_all``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "ours": "#2b7bba",
        "aiocouch401": "#d95f02",
        "aiohttp": "#7f7f7f",
        "ours-no-retry": "#7fb8e0",
        "ours-session": "#1b9e77",
    }
    workloads = [w for w in worker.WORKLOADS if any(find(runs, w, c) for c in clients)]
    figure, (cpu_axes, rss_axes) = plt.subplots(
        1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [3.2, 1]}
    )
    width = 0.8 / len(clients)
    for offset, client in enumerate(clients):
        xs, heights, failed = [], [], []
        for index, workload in enumerate(workloads):
            run = find(runs, workload, client)
            if run is not None:
                xs.append(index + (offset - (len(clients) - 1) / 2) * width)
                heights.append(max(run.cpu_s, 1e-3))
                failed.append(not run.ok)
        bars = cpu_axes.bar(
            xs, heights, width, label=client_label(client), color=colors.get(client, "#9467bd")
        )
        for bar, is_failed in zip(bars, failed):
            if is_failed:
                bar.set_hatch("//")
                bar.set_alpha(0.5)
                cpu_axes.annotate(
                    "failed",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    cpu_axes.set_yscale("log")
    cpu_axes.margins(y=0.12)
    cpu_axes.set_xticks(range(len(workloads)))
    cpu_axes.set_xticklabels(workloads, rotation=20)
    cpu_axes.set_ylabel("client CPU seconds (log scale, lower is better)")
    cpu_axes.set_title("Client CPU per workload (hatched: failed, CPU until the failure)")
    cpu_axes.legend()
    cpu_axes.grid(axis="y", which="both", alpha=0.3)

    measured = [(client, find(runs, "iterate_all", client)) for client in clients]
    rss = [(client, run) for client, run in measured if run is not None]
    bars = rss_axes.bar(
        [client_label(c) for c, _ in rss],
        [run.rss_mb for _, run in rss],
        color=[colors.get(c, "#9467bd") for c, _ in rss],
    )
    for bar, (_, run) in zip(bars, rss):
        label = f"{run.rss_mb:.0f} MB" if run.ok else "failed"
        rss_axes.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    rss_axes.set_ylabel("peak RSS growth, MB")
    rss_axes.set_title(f"iterate_all, {n:,} docs: peak RSS")
    rss_axes.tick_params(axis="x", rotation=20)
    figure.suptitle(caption, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="documents of the iterated database (default 100000; 2000 quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="small smoke run (also BENCH_QUICK=1)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per measurement, the median is kept (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--no-save",
        action="store_true",
        help="only print the report; keep bench/results.* and docs/bench.png as they are",
    )
    parser.add_argument(
        "--json", type=Path, help="also write the raw samples to this file (as results.json)"
    )
    parser.add_argument(
        "--clients", nargs="+", choices=worker.CLIENTS, default=list(worker.DEFAULT_CLIENTS)
    )
    parser.add_argument(
        "--workloads", nargs="+", choices=worker.WORKLOADS, default=worker.WORKLOADS
    )
    parser.add_argument(
        "--baseline",
        metavar="COMMIT",
        help="also run this project's src/ as of COMMIT (git archive), as client ours@COMMIT",
    )
    return parser.parse_args(argv)


def write_json(path: Path, runs: Sequence[Run], info: dict[str, Any]) -> None:
    """The run's settings, machine and every sample, as JSON."""
    path.write_text(json.dumps({**info, "runs": [vars(r) for r in runs]}, indent=2) + "\n")


def save_reports(
    runs: Sequence[Run], clients: Sequence[str], sizes: Sizes, report: str, info: dict[str, Any]
) -> None:
    """Writes bench/results.md, bench/results.json and the chart docs/bench.png."""
    machine = info["machine"]
    RESULTS_MD.write_text(report)
    write_json(RESULTS_JSON, runs, info)
    caption = (
        f"aiocouch benchmark: {machine['server']}, {machine['nproc']} CPUs, "
        f"Python {machine['python']}, aiohttp {machine['aiohttp']}"
    )
    write_chart(runs, clients, CHART, sizes.n, caption)
    print(
        f"wrote {RESULTS_MD.relative_to(REPO)}, {RESULTS_JSON.relative_to(REPO)}, "
        f"{CHART.relative_to(REPO)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and writes the reports."""
    args = parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    started = time.perf_counter()
    counts = QUICK_COUNTS if args.quick else FULL_COUNTS
    sizes = Sizes(args.n or (2_000 if args.quick else 100_000), counts)
    clients = list(args.clients)
    if "aiocouch401" in clients:
        ensure_venv_401()
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        if args.baseline:
            clients.append(stack.enter_context(exported_baseline(args.baseline)))
        server = stack.enter_context(bench_server())
        print(f"server: {server.url}", flush=True)
        machine = machine_info(server)
        read_db = ensure_read_database(server, sizes.n)
        for workload in args.workloads:
            for run in measure_workload(server, clients, workload, sizes, read_db, args.repeat):
                print_run(run)
                runs.append(run)
    info = {
        "machine": machine,
        "settings": {"n": sizes.n, "counts": counts, "quick": args.quick, "repeat": args.repeat},
        "total_wall_s": time.perf_counter() - started,
    }
    report = render_markdown(runs, clients, sizes, info)
    print("\n" + report)
    if not args.no_save:
        save_reports(runs, clients, sizes, report, info)
    if args.json:
        write_json(args.json, runs, info)
    problems = check_same_work(runs)
    problems += [
        f"{r.workload}/{r.client} failed: {r.error}"
        for r in runs
        if not r.ok and r.client != "aiocouch401"
    ]
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
