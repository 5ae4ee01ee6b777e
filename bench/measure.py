"""What every benchmark worker shares: the documents, the ids read, and the measurement.

Standard library only, so that it runs unchanged in every client's virtual environment:
``bench/worker.py`` (this project, aiocouch 4.0.1, plain aiohttp) and ``bench/peers.py``
(the other client libraries) import it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

#: Every workload, in the order of the reports.
WORKLOADS = (
    "create_save",
    "db_create_save",
    "get",
    "get_concurrent",
    "update",
    "bulk_create",
    "iterate_all",
    "bulk_update",
    "get_throughput",
)
#: Gets in flight at once in ``get_concurrent``.
CONCURRENCY = 32
#: Gets in flight at once in ``get_throughput`` (10,000 GETs by default).
THROUGHPUT_CONCURRENCY = 64

#: A prepared asynchronous workload: the timed part, returning (items processed, checksum).
Body = Callable[[], Awaitable[tuple[int, int]]]
#: The same for a synchronous client.
SyncBody = Callable[[], tuple[int, int]]

_PAYLOAD = "lorem ipsum dolor sit amet " * 5


class Unsupported(Exception):
    """A client has no public call for a workload; the message says which call is missing."""


def worker_parser(description: str, clients: Iterable[str]) -> argparse.ArgumentParser:
    """The command line every worker process takes: one client, one workload, one server."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--client", choices=list(clients), required=True)
    parser.add_argument("--workload", choices=WORKLOADS, required=True)
    parser.add_argument("--url", required=True, help="server URL without trailing slash")
    parser.add_argument("--db", required=True, help="database to work on")
    parser.add_argument("--count", type=int, required=True, help="documents or requests")
    parser.add_argument("--db-size", type=int, default=0, help="documents in a read database")
    return parser


def doc_id(index: int) -> str:
    """The id of the ``index``-th document of a seeded database (``doc-000001``...)."""
    return f"doc-{index:06d}"


def make_doc(index: int) -> dict[str, Any]:
    """A document body of about 350 bytes of JSON (``_id`` included), without ``_id``."""
    return {
        "type": "bench",
        "index": index,
        "name": f"document number {index}",
        "tags": ["alpha", "beta", "gamma", f"t{index % 97}"],
        "nested": {"a": index % 7, "b": [1, 2, 3], "c": None, "d": True},
        "payload": _PAYLOAD[: 100 + index % 16],
    }


def new_docs(count: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` (id, body) pairs for the create workloads."""
    return [(doc_id(i), make_doc(i)) for i in range(1, count + 1)]


def seeded_ids(count: int) -> list[str]:
    """The ids of the first ``count`` documents of a seeded database (the update workloads)."""
    return [doc_id(i) for i in range(1, count + 1)]


def read_ids(count: int, db_size: int) -> list[str]:
    """``count`` ids of the seeded read database, spread over it (wrapping around)."""
    if db_size <= 0:
        raise ValueError("--db-size is needed for the read workloads")
    step = max(1, db_size // count)
    return [doc_id(1 + (i * step) % db_size) for i in range(count)]


def concurrency_of(workload: str) -> int:
    """Requests in flight at once in ``workload``."""
    return THROUGHPUT_CONCURRENCY if workload == "get_throughput" else CONCURRENCY


async def bounded_gather(
    function: Callable[[Any], Awaitable[Any]], arguments: Iterable[Any], limit: int = CONCURRENCY
) -> list[Any]:
    """``function(argument)`` for every argument, at most ``limit`` at a time, in order."""
    queue = list(enumerate(arguments))
    results: list[Any] = [None] * len(queue)
    queue.reverse()

    async def drain() -> None:
        while queue:
            index, argument = queue.pop()
            results[index] = await function(argument)

    await asyncio.gather(*(drain() for _ in range(min(limit, len(results)))))
    return results


def threaded_map(
    function: Callable[[Any], Any], arguments: Iterable[Any], limit: int = CONCURRENCY
) -> list[Any]:
    """``function(argument)`` for every argument in ``limit`` threads: a synchronous client's
    way to keep ``limit`` requests in flight."""
    with ThreadPoolExecutor(max_workers=limit) as pool:
        return list(pool.map(function, arguments))


# -- measurement -------------------------------------------------------------------------


@dataclass
class Measurement:
    """CPU, wall and peak-RSS growth of one timed region, and what it returned."""

    cpu_s: float
    wall_s: float
    rss_mb: float
    items: int = 0
    checksum: int = 0
    #: Set when the workload raised; the numbers then cover the time until the failure.
    error: str | None = None


def _current_rss_bytes() -> int:
    """The resident set size of this process right now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); True if it did.

    Without the reset the peak would also cover whatever the process did before the
    workload (start-up, preparing the data), not only the workload itself.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _peak_rss_bytes(was_reset: bool) -> int:
    """The peak RSS: ``VmHWM`` after a reset, else ``ru_maxrss`` (KiB on Linux)."""
    if was_reset:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    """User + system CPU of the whole process, all threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def checkpoint(name: str) -> None:
    """Marks the start or end of the timed region for ``run.py`` and waits for its answer.

    With ``BENCH_CHECKPOINTS=1`` (set by ``run.py``) this prints ``@name`` and reads one
    line from stdin: the orchestrator reads its proxy's request counter meanwhile, so
    that only the workload's requests are counted, not the warm-up's or the close's.
    """
    if os.environ.get("BENCH_CHECKPOINTS") == "1":
        print(f"@{name}", flush=True)
        sys.stdin.readline()


@contextmanager
def _timed() -> Iterator[Measurement]:
    """Measures the ``with`` block into the yielded Measurement; records an exception."""
    checkpoint("start")
    gc.collect()
    was_reset = _reset_peak_rss()
    rss_before = _current_rss_bytes()
    cpu_before = _cpu_seconds()
    wall_before = time.perf_counter()
    measured = Measurement(0.0, 0.0, 0.0)
    try:
        yield measured
    except Exception as exc:
        traceback.print_exc()
        measured.error = describe_error(exc)
    measured.wall_s = time.perf_counter() - wall_before
    measured.cpu_s = _cpu_seconds() - cpu_before
    peak = _peak_rss_bytes(was_reset)
    measured.rss_mb = max(0, peak - rss_before) / (1024 * 1024)
    checkpoint("end")


async def measure(body: Body) -> Measurement:
    """Runs the asynchronous ``body`` and measures it; an exception is recorded, not raised."""
    with _timed() as measured:
        measured.items, measured.checksum = await body()
    return measured


def measure_sync(body: SyncBody) -> Measurement:
    """Runs the synchronous ``body`` and measures it; an exception is recorded, not raised."""
    with _timed() as measured:
        measured.items, measured.checksum = body()
    return measured


def describe_error(exc: BaseException) -> str:
    """``Type: message (at file.py:line)`` of the innermost frame of ``exc``."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


@dataclass
class Result:
    """What one run of a workload measured (bench/worker.py, bench/peers.py); printed as one
    JSON line."""

    client: str
    workload: str
    cpu_s: float
    wall_s: float
    rss_mb: float
    requests: int
    items: int
    checksum: int
    error: str | None
    library: str
    library_path: str
    #: Why the client cannot do the workload (no such public call); nothing was measured.
    unsupported: str | None = None

    @classmethod
    def of(
        cls,
        client: str,
        workload: str,
        measured: Measurement,
        *,
        requests: int,
        library: str,
        library_path: str,
    ) -> Result:
        """The result of a measured run: ``measured`` rounded as the report shows it."""
        return cls(
            client=client,
            workload=workload,
            cpu_s=round(measured.cpu_s, 4),
            wall_s=round(measured.wall_s, 4),
            rss_mb=round(measured.rss_mb, 2),
            requests=requests,
            items=measured.items,
            checksum=measured.checksum,
            error=measured.error,
            library=library,
            library_path=library_path,
        )
