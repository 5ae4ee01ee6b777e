"""Benchmark: this project's aiocouch against aiocouch 4.0.1, plain aiohttp and the field.

``make bench`` runs this with the repository's ``.venv`` Python. It

1. starts a local pouchdb-server once (or uses ``COUCHDB_URL``, with ``COUCHDB_USER`` /
   ``COUCHDB_PASSWORD``), through ``testserver.pouchdb_server``;
2. creates a virtual environment per other library on the first run, each with pinned
   versions from PyPI (:data:`ENVIRONMENTS`): ``bench/.venv-aiocouch401`` (pinned to the
   aiohttp version of ``.venv``), ``bench/.venv-couchdb3``, ``-ibmcloudant``,
   ``-couchdb-python``, ``-chaise``, ``-aiocouchdb3``; a library that does not install is
   reported as such;
3. seeds the databases (plain aiohttp ``_bulk_docs``, not timed);
4. puts two proxies in front of the server (``bench/proxy.py``): one that counts the
   requests of the libraries without a request hook, and one that terminates TLS with
   certificates made by ``trustme`` for the https rows (every client);
5. runs every workload for every client in a fresh process (``bench/worker.py`` for this
   project, 4.0.1 and aiohttp; ``bench/peers.py`` for the other libraries);
6. prints Markdown tables, writes ``bench/results.md``, ``bench/results.json`` and the
   chart ``docs/bench.png``.

Options: ``--n`` documents of the iterated database (``make bench BENCH_N=1000000``),
``--quick`` (or ``BENCH_QUICK=1``) for a smoke run of under two minutes, ``--repeat`` (3 by
default, 1 with ``--quick``) runs each measurement that often, each time in a fresh process
and on a fresh database, and keeps the median; a failed run is not repeated. The repeats of
one workload take turns between the clients (round by round), so a slow spell of the
machine falls on all of them. ``--clients`` picks the clients (see ``bench/worker.py`` and
``bench/peers.py``; ``ours-no-retry`` and ``ours-session`` are not run by default),
``--workloads`` the workloads, ``--no-save`` keeps the recorded results.

The exit status is 1 when this project or the aiohttp baseline failed a workload, or when
the clients did not do the same work (items or checksums differ); failures of the other
libraries are reported, not fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import peers
import worker
from proxy import CountingProxy, TlsFiles

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORKER = BENCH / "worker.py"
PEERS = BENCH / "peers.py"
VENV_401 = BENCH / ".venv-aiocouch401"
RESULTS_MD = BENCH / "results.md"
RESULTS_JSON = BENCH / "results.json"
CHART = REPO / "docs" / "bench.png"

CLIENT_LABELS = {
    "ours": "this project",
    "aiocouch401": "aiocouch 4.0.1",
    "aiohttp": "aiohttp",
    "ours-no-retry": "this project, retry=False",
    "ours-session": "this project, SessionAuth",
    "couchdb3": "couchdb3",
    "couchdb3-async": "couchdb3 async",
    "ibmcloudant": "ibmcloudant",
    "couchdb-python": "couchdb-python",
    "chaise": "chaise",
    "aiocouchdb3": "aiocouchdb3",
    # the raw floor (bench/raw_client.py)
    "floor": "raw floor",
    "floor-bulk-get": "raw floor, _bulk_get",
    "floor-nogc": "raw floor, collector off",
    "floor-docs": "raw floor + documents",
}
#: The clients of a plain ``make bench``.
DEFAULT_CLIENTS = (*worker.DEFAULT_CLIENTS, *peers.CLIENTS)
#: The virtual environments of the clients that do not run in ``.venv``: name -> pinned
#: requirements (PyPI), each in ``bench/.venv-<name>``.
ENVIRONMENTS = {
    "aiocouch401": ["aiocouch==4.0.1", f"aiohttp=={version('aiohttp')}"],
    "couchdb3": ["couchdb3==3.5.0"],
    "ibmcloudant": ["ibmcloudant==0.11.12"],
    "couchdb-python": ["CouchDB==1.2"],
    "chaise": ["chaise==0.7.1"],
    "aiocouchdb3": ["aiocouchdb3==0.1.5"],
}
#: The environment each of those clients runs in.
CLIENT_ENVIRONMENTS = {
    "aiocouch401": "aiocouch401",
    **{client: client for client in peers.CLIENTS},
    "couchdb3-async": "couchdb3",
}
#: The ratio columns of the CPU table, (heading, numerator, denominator), each shown when
#: both clients ran.
RATIOS = (
    ("ours / aiohttp", "ours", "aiohttp"),
    ("ours / 4.0.1", "ours", "aiocouch401"),
    ("defaults / retry=False", "ours", "ours-no-retry"),
    ("session / basic", "ours-session", "ours"),
    # the raw floor (bench/raw_client.py)
    ("floor / aiohttp", "floor", "aiohttp"),
    ("ours / floor", "ours", "floor"),
    ("_bulk_get / _all_docs floor", "floor-bulk-get", "floor"),
    ("ours / floor, collector off", "ours", "floor-nogc"),
    ("documents floor / aiohttp", "floor-docs", "aiohttp"),
    ("ours / documents floor", "ours", "floor-docs"),
)
#: The https rows: workload name -> the workload run through the TLS proxy.
HTTPS_WORKLOADS = {"https_get": "get", "https_create_save": "create_save"}
WORKLOADS = (*worker.WORKLOADS, *HTTPS_WORKLOADS)
#: Workloads whose CPU is summed up in the "mix total" row.
MIX = (
    "create_save",
    "get",
    "get_concurrent",
    "update",
    "bulk_create",
    "iterate_all",
    "bulk_update",
)
#: The throughput rows (documents per second of wall time).
THROUGHPUT = ("get_throughput", "iterate_all")
#: Workloads that read the seeded N-document database.
READ_WORKLOADS = ("get", "get_concurrent", "iterate_all", "get_throughput")
#: Workloads that write into a database seeded with ``count`` documents first.
SEEDED_WORKLOADS = ("update", "bulk_update")
#: Workloads after which the database must hold exactly ``count`` documents.
CREATE_WORKLOADS = ("create_save", "db_create_save", "bulk_create")


def base_workload(workload: str) -> str:
    """The workload a worker runs for ``workload`` (an https row runs its http workload)."""
    return HTTPS_WORKLOADS.get(workload, workload)


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
    "db_create_save": 500,
    "get": 500,
    "get_concurrent": 2_000,
    "update": 500,
    "bulk_create": 40_000,
    "bulk_update": 5_000,
    "get_throughput": 10_000,
    "https_get": 500,
    "https_create_save": 500,
}
QUICK_COUNTS = {
    "create_save": 50,
    "db_create_save": 50,
    "get": 50,
    "get_concurrent": 200,
    "update": 50,
    "bulk_create": 1_000,
    "bulk_update": 500,
    "get_throughput": 500,
    "https_get": 50,
    "https_create_save": 50,
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
    #: Why the client cannot do the workload (shown as "—"); nothing was measured.
    unsupported: str | None = None
    library: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the workload ran to its end."""
        return self.error is None and self.unsupported is None

    @property
    def per_second(self) -> float:
        """Items per second of wall time."""
        return self.items / self.wall_s if self.wall_s > 0 else 0.0


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


# -- the other libraries' environments ---------------------------------------------------


def environment_python(name: str) -> Path:
    """The interpreter of the environment ``name`` (``bench/.venv-<name>``)."""
    return BENCH / f".venv-{name}" / "bin" / "python"


def ensure_environment(name: str) -> str | None:
    """Creates ``bench/.venv-<name>`` with its pinned requirements unless it is up to date.

    Returns None, or why the library cannot run (its install failed: the last line of
    pip's error), so that the report shows it instead of stopping the benchmark.
    """
    requirements = ENVIRONMENTS[name]
    python = environment_python(name)
    stamp = python.parent.parent / ".stamp-bench"
    if python.exists() and stamp.exists() and stamp.read_text().split() == requirements:
        return None
    print(f"creating {python.parent.parent.relative_to(REPO)} with {' '.join(requirements)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(python.parent.parent)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *requirements],
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    if install.returncode != 0:
        errors = [line for line in install.stderr.splitlines() if line.startswith("ERROR")]
        return f"does not install on Python {platform.python_version()}: " + (
            errors[-1] if errors else f"pip exited with {install.returncode}"
        )
    stamp.write_text("\n".join(requirements) + "\n")
    return None


def ensure_environments(clients: Sequence[str]) -> dict[str, str]:
    """The environments of ``clients``; returns client -> why it cannot run, for failures."""
    problems: dict[str, str] = {}
    for name in dict.fromkeys(CLIENT_ENVIRONMENTS[c] for c in clients if c in CLIENT_ENVIRONMENTS):
        problem = ensure_environment(name)
        if problem:
            problems.update({c: problem for c, e in CLIENT_ENVIRONMENTS.items() if e == name})
    return problems


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
    """Where this project's ``src/`` as of ``commit`` is exported for ``--baseline``.

    The folder is this process's own: two runs at once (with the same baseline) must not
    delete each other's copy when the first one ends.
    """
    return Path(tempfile.gettempdir()) / f"aiocouch-bench-{commit}-{os.getpid()}" / "src"


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
    environment = CLIENT_ENVIRONMENTS.get(client.partition("@")[0])
    return environment_python(environment) if environment else Path(sys.executable)


@dataclass
class Endpoints:
    """Where the clients send their requests: the server, or one of the proxies."""

    server: Server
    #: Counts the requests of the libraries without a request hook (bench/peers.py).
    counting: CountingProxy
    #: Terminates TLS for the https rows (every client); counts their requests too.
    tls: CountingProxy
    tls_files: TlsFiles

    def route(self, client: str, workload: str) -> tuple[str, CountingProxy | None]:
        """The URL ``client`` uses for ``workload``, and the proxy that counts its requests
        (None: the worker counts them itself with an aiohttp trace hook)."""
        if workload in HTTPS_WORKLOADS:
            return self.tls.url, self.tls
        if client in peers.CLIENTS:
            return self.counting.url, self.counting
        return self.server.url, None


def run_worker(
    endpoints: Endpoints, client: str, workload: str, db: str, sizes: Sizes
) -> dict[str, Any]:
    """One fresh worker process (``python -I``: no script directory, no PYTHONPATH).

    The worker stops at the start and the end of its timed region (``measure.checkpoint``)
    until this answers on its stdin; the counting proxy's counter is read at both.
    """
    base, _, commit = client.partition("@")
    url, proxy = endpoints.route(base, workload)
    command = [
        str(python_for(client)),
        "-I",
        str(PEERS if base in peers.CLIENTS else WORKER),
        f"--client={base}",
        *([f"--src={baseline_src(commit)}"] if commit else []),
        f"--workload={base_workload(workload)}",
        f"--url={url}",
        f"--db={db}",
        f"--count={sizes.count(workload)}",
        f"--db-size={sizes.n}",
    ]
    env = worker_environment(endpoints.server)
    env["BENCH_CHECKPOINTS"] = "1"
    # The trust store of the TLS proxy's certificate authority: Python's ssl module
    # (aiohttp, httpx, http.client) reads SSL_CERT_FILE, requests REQUESTS_CA_BUNDLE.
    env["SSL_CERT_FILE"] = env["REQUESTS_CA_BUNDLE"] = str(endpoints.tls_files.ca_file)
    counted: dict[str, int] = {}
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        watchdog = threading.Timer(WORKER_TIMEOUT, process.kill)
        watchdog.start()
        try:
            lines = answer_checkpoints(process, proxy, counted)
        finally:
            watchdog.cancel()
        errors.seek(0)
        stderr = errors.read()
    if process.returncode != 0 or not lines:
        tail = (stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"worker exited with {process.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    if proxy is not None and {"start", "end"} <= counted.keys():
        result["requests"] = counted["end"] - counted["start"]
    if result.get("error"):
        print(stderr.rstrip(), file=sys.stderr)
    check_library(client, result)
    return result


def answer_checkpoints(
    process: subprocess.Popen[str], proxy: CountingProxy | None, counted: dict[str, int]
) -> list[str]:
    """Reads the worker's stdout to its end: notes the proxy's counter at each checkpoint
    and lets the worker go on; returns the JSON lines."""
    assert process.stdin is not None and process.stdout is not None
    lines = []
    for line in process.stdout:
        if line.startswith("@"):
            counted[line[1:].strip()] = proxy.requests if proxy is not None else 0
            process.stdin.write("\n")
            process.stdin.flush()
        elif line.startswith("{"):
            lines.append(line)
    process.stdin.close()
    process.wait()
    return lines


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
    if client in peers.CLIENTS and python_for(client).parent.parent not in path.parents:
        raise SystemExit(f"'{client}' imported {result.get('library')} from {path}")


def prepare_database(server: Server, workload: str, client: str, sizes: Sizes, read_db: str) -> str:
    """The database a run works on: the shared read database, or a fresh one."""
    workload = base_workload(workload)
    if workload in READ_WORKLOADS:
        return read_db
    # a valid database name: "ours@abc123" and "couchdb3-async" say more than CouchDB allows
    label = re.sub(r"[^a-z0-9_]", "_", client.lower())
    name = f"bench_{workload}_{label}_{uuid.uuid4().hex[:8]}"
    if workload in SEEDED_WORKLOADS:
        seed_database(server, name, sizes.count(workload))
    else:
        status, answer = http(server, "PUT", f"/{name}")
        if status not in (201, 202):
            raise SystemExit(f"PUT /{name} answered {status}: {answer}")
    return name


def measure_workload(
    endpoints: Endpoints,
    clients: Sequence[str],
    workload: str,
    sizes: Sizes,
    read_db: str,
    repeat: int,
    broken: dict[str, str],
) -> list[Run]:
    """Runs one workload ``repeat`` times for each client; keeps the medians.

    Round by round, each round starting with the next client, so that neither a slow spell
    of the shared machine nor the order favours one client. A client that failed, or that
    has no call for the workload, stops; one in ``broken`` (client -> why it cannot run,
    e.g. it does not install) is not started.
    """
    runs = [Run(client, workload, sizes.count(workload)) for client in clients]
    for round_number in range(repeat):
        turn = round_number % len(runs)
        for run in runs[turn:] + runs[:turn]:
            if run.client in broken:
                run.samples = [{"error": broken[run.client]}]
            elif not (run.samples and (run.samples[-1].get("error") or run.unsupported)):
                run.samples.append(sample_run(endpoints, run, sizes, read_db))
                run.unsupported = run.samples[-1].get("unsupported")
    for run in runs:
        summarize(run)
    return runs


def sample_run(endpoints: Endpoints, run: Run, sizes: Sizes, read_db: str) -> dict[str, Any]:
    """One measurement of ``run``'s workload and client, on a fresh database if it writes."""
    server = endpoints.server
    library = peers.LIBRARIES.get(run.client)
    if library is not None and base_workload(run.workload) in library.unsupported:
        return {"unsupported": library.unsupported[base_workload(run.workload)]}
    db = prepare_database(server, run.workload, run.client, sizes, read_db)
    try:
        sample = run_worker(endpoints, run.client, run.workload, db, sizes)
        if (
            base_workload(run.workload) in CREATE_WORKLOADS
            and not sample.get("error")
            and not sample.get("unsupported")
        ):
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
    run.unsupported = last.get("unsupported")
    used = [last] if run.error else run.samples
    for name in ("cpu_s", "wall_s", "rss_mb"):
        setattr(run, name, statistics.median(float(s.get(name, 0.0)) for s in used))
    run.requests = int(used[0].get("requests", 0))
    run.items = int(used[0].get("items", 0))
    run.checksum = int(used[0].get("checksum", 0))
    run.library = str(last.get("library", ""))


def print_run(run: Run) -> None:
    """One progress line."""
    status = (
        "ok" if run.ok else f"— {run.unsupported}" if run.unsupported else f"FAILED: {run.error}"
    )
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
    """Client CPU seconds, "—" for a workload the client has no call for, or the CPU spent
    until a failure."""
    if run is None:
        return "-"
    if run.unsupported:
        return "—"
    return f"{run.cpu_s:.3f}" if run.ok else f"failed after {run.cpu_s:.3f}"


def result_cell(run: Run) -> str:
    """The outcome of a run in the detail table."""
    if run.unsupported:
        return f"— ({run.unsupported})"
    return "ok" if run.ok else f"**failed**: {run.error}"


def detail_table(runs: Sequence[Run], clients: Sequence[str]) -> list[str]:
    """Every workload for every client: CPU (median, min-max), wall, peak RSS, requests."""
    lines = [
        "| workload | count | client | client CPU s | CPU min-max s | wall s | peak RSS MB "
        "| requests | result |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for workload in WORKLOADS:
        for client in clients:
            run = find(runs, workload, client)
            if run is None:
                continue
            if run.unsupported:
                lines.append(
                    f"| {workload} | {run.count:,} | {client_label(client)} | — | | | | | "
                    f"{result_cell(run)} |"
                )
                continue
            requests = f"{run.requests:,}" if run.requests or run.ok else "not counted"
            lines.append(
                f"| {workload} | {run.count:,} | {client_label(client)} | {run.cpu_s:.3f} | "
                f"{cpu_range(run)} | {run.wall_s:.3f} | {run.rss_mb:.1f} | {requests} | "
                f"{result_cell(run)} |"
            )
    return lines


def cpu_range(run: Run) -> str:
    """The lowest and highest client CPU of the samples a median was taken of."""
    values = [float(s["cpu_s"]) for s in run.samples if not s.get("error")]
    return f"{min(values):.3f}-{max(values):.3f}" if len(values) > 1 else "-"


def is_floor(client: str) -> bool:
    """Whether ``client`` is the raw floor (``bench/raw_client.py``), which is no library."""
    return client.startswith("floor")


def best_other(runs: Sequence[Run], workload: str, clients: Sequence[str]) -> Run | None:
    """The cheapest finished run of ``workload`` by a client other than this project."""
    done = [
        run
        for client in clients
        if not client.startswith("ours")
        and not is_floor(client)
        and (run := find(runs, workload, client)) is not None
        and run.ok
    ]
    return min(done, key=lambda run: run.cpu_s, default=None)


def cpu_table(
    runs: Sequence[Run], clients: Sequence[str], workloads: Sequence[str], with_total: bool
) -> list[str]:
    """Client CPU side by side, the cheapest other client, and the ratios of :data:`RATIOS`
    whose clients ran; the cheapest client of each row in bold."""
    ratios = [
        *((h, top, bottom) for h, top, bottom in RATIOS if {top, bottom} <= set(clients)),
        *((f"ours / {c.partition('@')[2]}", "ours", c) for c in clients if "@" in c),
    ]
    show_best = "ours" in clients and any(not c.startswith("ours") for c in clients)
    heads = [
        *(client_label(c) for c in clients),
        *(["cheapest other", "ours / cheapest other"] if show_best else []),
        *(h for h, _, _ in ratios),
    ]
    lines = [
        "| workload | " + " | ".join(heads) + " |",
        "|---|" + "---:|" * len(heads),
    ]
    for workload in workloads:
        row = [find(runs, workload, c) for c in clients]
        if all(r is None for r in row):
            continue
        # (the raw floor is the least the calls cost, not a client one could pick)
        cheapest = min(
            (r.cpu_s for r in row if r is not None and r.ok and not is_floor(r.client)),
            default=None,
        )
        cells = [
            f"**{cpu_cell(r)}**"
            if r is not None and r.ok and r.cpu_s == cheapest and not is_floor(r.client)
            else cpu_cell(r)
            for r in row
        ]
        if show_best:
            other = best_other(runs, workload, clients)
            cells.append(f"{other.cpu_s:.3f} ({client_label(other.client)})" if other else "-")
            cells.append(ratio(find(runs, workload, "ours"), other))
        cells += [
            ratio(find(runs, workload, top), find(runs, workload, bottom))
            for _, top, bottom in ratios
        ]
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    if not with_total or not set(MIX) <= {run.workload for run in runs}:
        return lines
    totals = {c: mix_total(runs, c) for c in clients}
    cells = [
        f"{total:.3f}" if complete else "—" if unsupported else f">= {total:.3f} (failures)"
        for total, complete, unsupported in totals.values()
    ]
    cells += ["", ""] if show_best else []
    cells += [total_ratio(totals, top, bottom) for _, top, bottom in ratios]
    lines.append(f"| **mix total** ({', '.join(MIX)}) | " + " | ".join(cells) + " |")
    return lines


def throughput_table(runs: Sequence[Run], clients: Sequence[str]) -> list[str]:
    """Documents per second of wall time (client process, server on the same machine)."""
    lines = [
        "| workload | " + " | ".join(client_label(c) for c in clients) + " |",
        "|---|" + "---:|" * len(clients),
    ]
    for workload in THROUGHPUT:
        row = [find(runs, workload, c) for c in clients]
        if all(r is None for r in row):
            continue
        cells = [
            "-"
            if r is None
            else "—"
            if r.unsupported
            else f"{r.per_second:,.0f}/s"
            if r.ok
            else "failed"
            for r in row
        ]
        count = next(r.count for r in row if r is not None)
        lines.append(f"| {workload} ({count:,} documents) | " + " | ".join(cells) + " |")
    return lines


def https_table(runs: Sequence[Run], clients: Sequence[str]) -> list[str]:
    """Client CPU over https (through the TLS proxy) and the same over http."""
    lines = [
        "| workload | " + " | ".join(client_label(c) for c in clients) + " |",
        "|---|" + "---:|" * len(clients),
    ]
    for workload, plain in HTTPS_WORKLOADS.items():
        row = [find(runs, workload, c) for c in clients]
        if all(r is None for r in row):
            continue
        cells = []
        for client, run in zip(clients, row):
            over_http = find(runs, plain, client)
            cell = cpu_cell(run)
            if run is not None and run.ok and over_http is not None and over_http.ok:
                cell += f" ({run.cpu_s / over_http.cpu_s:.1f}x http)"
            cells.append(cell)
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    return lines


def mix_total(runs: Sequence[Run], client: str) -> tuple[float, bool, bool]:
    """Client CPU summed over the mix workloads; False when one failed or is missing; True
    (third) when the client has no code for one of them."""
    mine = [find(runs, workload, client) for workload in MIX]
    total = sum(r.cpu_s for r in mine if r is not None)
    unsupported = any(r is not None and r.unsupported for r in mine)
    return total, all(r is not None and r.ok for r in mine), unsupported


def total_ratio(totals: dict[str, tuple[float, bool, bool]], top: str, bottom: str) -> str:
    """Mix total of ``top`` over ``bottom``'s (an upper bound if ``bottom`` failed; none if
    it has no code for a workload)."""
    if top not in totals or bottom not in totals:
        return "-"
    (mine, mine_complete, _), (theirs, theirs_complete, unsupported) = totals[top], totals[bottom]
    if not mine_complete or theirs <= 0 or unsupported:
        return "-"
    value = f"**{mine / theirs:.2f}x**"
    return value if theirs_complete else f"<= {value}"


def targets(runs: Sequence[Run], sizes: Sizes) -> list[str]:
    """The issue's targets next to what was measured (reported, not asserted)."""
    lines = ["| target | measured | met |", "|---|---|---|"]
    iterate = find(runs, "iterate_all", "ours")
    iterate_401 = find(runs, "iterate_all", "aiocouch401")
    bulk = find(runs, "bulk_create", "ours")
    ours_total, ours_ok, _ = mix_total(runs, "ours")
    plain_total, plain_ok, _ = mix_total(runs, "aiohttp")

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


HTTP_WORKLOADS = tuple(w for w in WORKLOADS if w not in HTTPS_WORKLOADS)


def render_markdown(
    runs: Sequence[Run], clients: Sequence[str], sizes: Sizes, info: dict[str, Any]
) -> str:
    """The whole report as Markdown."""
    machine = info["machine"]
    libraries = dict.fromkeys(
        f"{client_label(r.client)}: {r.library}" for r in runs if r.library and r.client in clients
    )
    load = info.get("load", {})
    head = [
        "# Benchmark: aiocouch (this project) and the other Python CouchDB clients",
        "",
        "## Method",
        "",
        f"- Server: {machine['server']} at {machine['server_url']}, on the same machine as "
        "the clients (so wall times include the server's work, and clients compete with it "
        f"for the {machine['nproc']} CPUs).",
        f"- Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['platform']}, "
        f"Python {machine['python']}, aiohttp {machine['aiohttp']}; load average "
        f"{load.get('start', '?')} at the start, {load.get('end', '?')} at the end (other "
        "jobs shared the machine).",
        f"- Libraries: {'; '.join(libraries)}.",
        f"- Iterated database: {sizes.n:,} documents of about 350 bytes.",
        "- Client CPU = user + system time of the client process during the workload only "
        "(`getrusage`); peak RSS = growth of the peak resident set over the RSS just before "
        "it; requests = requests sent (aiohttp trace hook, or the counting proxy for the "
        "libraries without one).",
        f"- Median of {info['settings']['repeat']} run(s) (get_throughput: "
        f"{info['settings'].get('throughput_repeat', 1)}), each in a fresh process, the "
        "clients taking turns; the detail table gives the lowest and highest. Whole run: "
        f"{info['total_wall_s']:.0f} s.",
        "",
        "## Client CPU seconds (http; the cheapest client of each row in bold, the floor aside)",
        "",
    ]
    body = [
        *cpu_table(runs, clients, HTTP_WORKLOADS, with_total=True),
        "",
        "## Throughput (documents per second of wall time, whole client process)",
        "",
        "The server runs on the same machine and takes most of the wall time; compare the "
        "clients with each other, not with a remote server's figures.",
        "",
        *throughput_table(runs, clients),
        "",
        "## https (client CPU seconds; through a local TLS-terminating proxy)",
        "",
        *https_table(runs, clients),
        "",
        "## Targets",
        "",
        *targets(runs, sizes),
    ]
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
    "- `create_save` is this project's `Document(db, id, data=...).save()` (one PUT), "
    "`db_create_save` its `await db.create(id, data=...)` then `save()`; the other libraries "
    'show their own one-PUT call in `create_save` and "—" in `db_create_save`.',
    "- The other libraries (`bench/peers.py`) run in virtual environments of their own "
    "(`bench/.venv-<name>`, pinned versions from PyPI) through their documented public "
    "calls: couchdb3 `db.save(doc)`, `db.get(id)`, `db.bulk_docs(docs)`, "
    "`db.all_docs(include_docs=True)`, `db.bulk_get(...)` (sync, and the same awaited from "
    "`couchdb3.aio`); ibmcloudant `put_document`, `get_document`, `post_bulk_docs`, "
    "`post_all_docs` (with `keys` for the bulk update); couchdb-python `db.save(doc)`, "
    "`db[id]`, `db.update(docs)`, `db.view('_all_docs', include_docs=True)` (with `keys`); "
    "chaise `db.attempt_put`, `db.get`, `db.iter_all_docs(include_docs=True)`; aiocouchdb3 "
    "`db.create_doc`, `db.get_doc`, `db.update_doc`. The synchronous libraries keep 32 "
    "(64) requests in flight with a thread pool; bulk writes go in batches of "
    f"{peers.BULK_BATCH:,} documents (the asynchronous libraries {peers.BULK_IN_FLIGHT} at a "
    "time). Their requests are counted by a proxy in front of the server (`bench/proxy.py`).",
    "- chaise's `SessionPool` first checks `GET /_up`, which pouchdb-server does not have; "
    "the benchmark builds chaise's session with its public constructor "
    "(`BasicSession(httpx.AsyncClient(auth=..., timeout=300), url)`) instead; the time limit "
    "is couchdb3's default, since httpx's own 5 s ends a 100,000-document `_all_docs` before "
    "its first byte on a loaded machine.",
    "- aiocouchdb3 logs in with `POST /_session` and relies on aiohttp's cookie jar, which "
    "keeps no cookie for an IP address: given `127.0.0.1` its requests go out anonymous "
    "(cheaper for the server, and pouchdb-server lets anonymous users read). It is given "
    "the server as `localhost`, so it sends its session cookie like the others send "
    "credentials.",
    "- https: every client talks to a local TLS-terminating proxy (asyncio, a certificate "
    "made by `trustme` at run time, trusted through `SSL_CERT_FILE` / `REQUESTS_CA_BUNDLE`), "
    "which forwards to the server over loopback http; the proxy's CPU is not the client's.",
    "- The raw floor (`bench/raw_client.py`) is no library: the same HTTP requests as the "
    "aiohttp client, made with the least work a Python program can do (keep-alive "
    "connections on `asyncio.Protocol`, each request one %-format, answers framed by hand, "
    "orjson). It escapes no id, applies no time limit, retries nothing, hands out no "
    "objects and checks no framing beyond what it needs: the least that a client making "
    "these calls must spend, not one to use. It is never bold and never the cheapest other.",
    "- The documents floor (`bench/document_floor.py`, bulk workloads only) is the raw floor "
    "with the least document model of aiocouch 4.0.1's bulk calls: an object per document "
    "handed to the caller (`bulk.create()`, `async for doc in bulk`), the JSON each was read "
    "as kept to find the changed ones, only those written, each saved one taking its "
    "revision. It checks nothing else: a lower bound for any client with that interface.",
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
    missing: dict[tuple[str, str], list[str]] = {}
    for run in runs:
        if run.unsupported:
            missing.setdefault((run.client, run.unsupported), []).append(run.workload)
    lines += [
        f'- "—" for {client_label(client)} in {", ".join(workloads)}: {reason}.'
        for (client, reason), workloads in missing.items()
    ]
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


COLORS = {
    "ours": "#1f5fa8",
    "aiocouch401": "#d95f02",
    "aiohttp": "#7f7f7f",
    "ours-no-retry": "#7fb8e0",
    "ours-session": "#1b9e77",
    "couchdb3": "#e7298a",
    "couchdb3-async": "#f4a6cf",
    "ibmcloudant": "#66a61e",
    "couchdb-python": "#e6ab02",
    "chaise": "#a6761d",
    "aiocouchdb3": "#7570b3",
    # the raw floor (bench/raw_client.py)
    "floor": "#000000",
    "floor-bulk-get": "#404040",
    "floor-nogc": "#808080",
    "floor-docs": "#606060",
}


def write_chart(
    runs: Sequence[Run], clients: Sequence[str], path: Path, n: int, caption: str
) -> None:
    """Client CPU per workload (grouped bars), throughput, and the peak RSS of iterate_all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w for w in WORKLOADS if any(find(runs, w, c) for c in clients)]
    figure = plt.figure(figsize=(19, 11))
    grid = figure.add_gridspec(2, 2, height_ratios=[1.3, 1], width_ratios=[1.6, 1])
    cpu_axes = figure.add_subplot(grid[0, :])
    rate_axes = figure.add_subplot(grid[1, 0])
    rss_axes = figure.add_subplot(grid[1, 1])
    grouped_bars(cpu_axes, runs, clients, workloads, lambda run: max(run.cpu_s, 1e-3))
    cpu_axes.set_yscale("log")
    cpu_axes.set_ylabel("client CPU seconds (log scale, lower is better)")
    cpu_axes.set_title(
        "Client CPU per workload (—: the library has no call for it; hatched: failed, CPU "
        "until the failure)"
    )
    cpu_axes.legend(ncol=6, fontsize=9, loc="upper left")

    rates = [w for w in THROUGHPUT if w in workloads]
    grouped_bars(rate_axes, runs, clients, rates, lambda run: run.per_second)
    rate_axes.set_yscale("log")
    rate_axes.set_ylabel("documents per second (log scale, higher is better)")
    rate_axes.set_title("Throughput, wall time of the client process (server on the same machine)")

    measured = [(c, run) for c in clients if (run := find(runs, "iterate_all", c)) is not None]
    shown = [(c, run) for c, run in measured if run.ok]
    bars = rss_axes.bar(
        [client_label(c) for c, _ in shown],
        [run.rss_mb for _, run in shown],
        color=[COLORS.get(c, "#9467bd") for c, _ in shown],
    )
    for bar, (_, run) in zip(bars, shown):
        rss_axes.annotate(
            f"{run.rss_mb:.0f} MB",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    rss_axes.set_ylabel("peak RSS growth, MB (lower is better)")
    rss_axes.set_title(f"iterate_all, {n:,} docs: peak RSS growth")
    rss_axes.tick_params(axis="x", rotation=30, labelsize=8)
    figure.suptitle(caption, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def grouped_bars(
    axes: Any,
    runs: Sequence[Run],
    clients: Sequence[str],
    workloads: Sequence[str],
    height: Callable[[Run], float],
) -> None:
    """One group of bars per workload, one bar per client; "—" marks an unsupported one."""
    width = 0.85 / len(clients)
    for offset, client in enumerate(clients):
        for index, workload in enumerate(workloads):
            run = find(runs, workload, client)
            if run is None:
                continue
            x = index + (offset - (len(clients) - 1) / 2) * width
            if run.unsupported or (not run.ok and workload in THROUGHPUT):
                axes.annotate(
                    "—",
                    (x, 0),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    xycoords=("data", "axes fraction"),
                    fontsize=12,
                    color=COLORS.get(client),
                )
                continue
            bar = axes.bar(
                x,
                height(run),
                width,
                color=COLORS.get(client, "#9467bd"),
                label=None if client_label(client) in labelled(axes) else client_label(client),
            )[0]
            if not run.ok:
                bar.set_hatch("//")
                bar.set_alpha(0.5)
    axes.set_xticks(range(len(workloads)))
    axes.set_xticklabels(workloads, rotation=15)
    axes.grid(axis="y", which="both", alpha=0.3)


def labelled(axes: Any) -> set[str]:
    """The labels already in the axes' legend handles."""
    return {str(label) for label in axes.get_legend_handles_labels()[1]}


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="documents of the iterated database (default 100000; 1000 quick)",
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
        "--throughput-repeat",
        type=int,
        default=1,
        help="runs of get_throughput (10,000 GETs each; default 1, its wall time is long)",
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
        "--clients",
        nargs="+",
        choices=[*worker.CLIENTS, *peers.CLIENTS],
        default=list(DEFAULT_CLIENTS),
    )
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=WORKLOADS)
    parser.add_argument(
        "--baseline",
        metavar="COMMIT",
        help="also run this project's src/ as of COMMIT (git archive), as client ours@COMMIT",
    )
    return parser.parse_args(argv)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (``uptime``), as text."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


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
    sizes = Sizes(args.n or (1_000 if args.quick else 100_000), counts)
    clients = list(args.clients)
    broken = ensure_environments(clients)
    runs: list[Run] = []
    load_start = load_average()
    with contextlib.ExitStack() as stack:
        if args.baseline:
            clients.append(stack.enter_context(exported_baseline(args.baseline)))
        server = stack.enter_context(bench_server())
        print(f"server: {server.url}", flush=True)
        upstream = urlsplit(server.url)
        host, port = upstream.hostname or "127.0.0.1", upstream.port or 80
        tls_files = stack.enter_context(TlsFiles())
        endpoints = Endpoints(
            server,
            counting=stack.enter_context(CountingProxy(host, port)),
            tls=stack.enter_context(CountingProxy(host, port, tls=tls_files)),
            tls_files=tls_files,
        )
        machine = machine_info(server)
        read_db = ensure_read_database(server, sizes.n)
        settings = {
            "n": sizes.n,
            "counts": counts,
            "quick": args.quick,
            "repeat": args.repeat,
            "throughput_repeat": args.throughput_repeat,
        }
        for workload in args.workloads:
            repeat = args.throughput_repeat if workload == "get_throughput" else args.repeat
            measured = measure_workload(
                endpoints, clients, workload, sizes, read_db, repeat, broken
            )
            for run in measured:
                print_run(run)
                runs.append(run)
            info = {
                "load": {"start": load_start, "end": load_average()},
                "machine": machine,
                "settings": settings,
                "total_wall_s": time.perf_counter() - started,
            }
            report = render_markdown(runs, clients, sizes, info)
            if not args.no_save:  # after every workload: a stopped run keeps what it measured
                save_reports(runs, clients, sizes, report, info)
    print("\n" + report)
    if args.json:
        write_json(args.json, runs, info)
    problems = check_same_work(runs)
    problems += [
        f"{r.workload}/{r.client} failed: {r.error}"
        for r in runs
        if r.error and r.client.partition("@")[0] in ("ours", "aiohttp")
    ]
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
