"""Where iteration's CPU goes, part by part: a saved ``_all_docs`` body replayed in-process.

``db.docs()`` spends its CPU on the bytes of the answer once they arrived: finding each
row, decoding it, building its Document, handing it out. This script replays a saved
``GET /{db}/_all_docs?include_docs=true`` body in pieces of 128 KiB (what the lean
transport hands out) through those steps, each step adding to the one before, and prints
the CPU per row (median of the rounds, all steps interleaved) and the garbage collections
of each; no network, no server, so the parts can be told apart on a loaded machine::

    curl -u admin:password -o body.json \
        'http://127.0.0.1:5984/bench_iter_100000/_all_docs?include_docs=true'
    .venv/bin/python bench/iteration_parts.py body.json
    .venv/bin/python bench/iteration_parts.py body.json --baseline /tmp/old/src/aiocouch/_rows.py

``--baseline`` also runs the row parser of another ``_rows.py`` (e.g. ``git show
63f53f1:src/aiocouch/_rows.py``) through the same steps. ``--couchdb-layout`` first lays
a one-line body (pouchdb-server's) out as CouchDB writes it: one row per line, ``,\r\n``
between rows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from aiocouch import _json, _rows
from aiocouch.document import Document

PIECE = 1 << 17


def load_rows_module(path: str) -> ModuleType:
    """``_rows.py`` at ``path``, imported beside this project's modules."""
    spec = importlib.util.spec_from_file_location("aiocouch._rows_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "aiocouch"
    spec.loader.exec_module(module)
    return module


def batches(module: ModuleType, pieces: list[bytes]) -> Iterator[list[tuple[Any, bytes]]]:
    """The parser's batches, read as ``parsed_pieces`` reads them (``more`` if it has it)."""
    parser = module.RowParser("rows")
    more = getattr(parser, "more", lambda: [])
    for piece in pieces:
        batch = parser.feed(piece)
        while batch:
            yield batch
            batch = more()
    yield parser.close()


def documents(module: ModuleType, pieces: list[bytes]) -> Iterator[Document]:
    """The Documents, built and checked as ``View.docs()`` builds them."""
    from_server = Document._from_server
    for batch in batches(module, pieces):
        for row, source in batch:
            doc = row.get("doc")
            if (
                type(doc) is dict
                and type(doc.get("_id")) is str
                and "error" not in row
                and not doc["_id"].startswith("_design/")
            ):
                yield from_server(None, doc, source)


def couchdb_layout(body: bytes) -> bytes:
    """``body`` (one line) laid out as CouchDB writes it: one row per line."""
    rows = orjson.loads(body)
    lines = b",\r\n".join(orjson.dumps(row) for row in rows.pop("rows"))
    head = orjson.dumps(rows)[:-1] + (b"," if rows else b"")
    return head + b'"rows":[\r\n' + lines + b"\r\n]}\n"


def steps(body: bytes, baseline: ModuleType | None) -> dict[str, Callable[[], Any]]:
    """The measured steps, by name."""
    pieces = [body[i : i + PIECE] for i in range(0, len(body), PIECE)]
    rows = [text for batch in batches(_rows, pieces) for _, text in batch]

    def decode_rows() -> None:
        for text in rows:
            orjson.loads(text)

    def long_number_check() -> None:
        for piece in pieces:
            _json.has_long_number(piece)

    def parse(module: ModuleType) -> Callable[[], None]:
        def run() -> None:
            for _ in batches(module, pieces):
                pass

        return run

    def build(module: ModuleType) -> Callable[[], None]:
        def run() -> None:
            for document in documents(module, pieces):
                document["index"]

        return run

    def hand_out() -> None:
        async def generator() -> AsyncIterator[Document]:
            for document in documents(_rows, pieces):
                yield document

        async def run() -> None:
            async for document in generator():
                document["index"]

        asyncio.run(run())

    measured: dict[str, Callable[[], Any]] = {
        "orjson.loads of the whole body, gc off (the floor)": lambda: orjson.loads(body),
        "orjson.loads of the whole body, gc on": lambda: orjson.loads(body),
        "orjson.loads of each row's bytes alone": decode_rows,
        "the long-number check of each piece": long_number_check,
        "parser: find, slice, decode each row": parse(_rows),
        "+ a Document per row, as docs() checks and builds it": build(_rows),
        "+ handed out by an async generator": hand_out,
    }
    if baseline is not None:
        measured["baseline parser"] = parse(baseline)
        measured["baseline parser + Documents"] = build(baseline)
    return measured


def main() -> int:
    """Measures the steps and prints a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("body", help="a saved _all_docs?include_docs=true body")
    parser.add_argument("--baseline", help="another _rows.py to run the same steps with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--couchdb-layout", action="store_true", help="one row per line")
    args = parser.parse_args()
    body = Path(args.body).read_bytes()
    if args.couchdb_layout:
        body = couchdb_layout(body)
    count = len(orjson.loads(body)["rows"])
    baseline = load_rows_module(args.baseline) if args.baseline else None
    measured = steps(body, baseline)
    collections = [0]
    gc.callbacks.append(lambda phase, info: collections.__setitem__(0, collections[0] + 1))
    cpu: dict[str, list[float]] = {name: [] for name in measured}
    collected: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, step in measured.items():
            gc.collect()
            if "gc off" in name:
                gc.disable()
            collections[0] = 0
            started = time.process_time()
            step()
            cpu[name].append(time.process_time() - started)
            gc.enable()
            collected[name] = collections[0] // 2  # (a start and a stop callback each)
    print(f"{count:,} rows, {len(body) / 1e6:.0f} MB, median of {args.rounds} rounds\n")
    print("| step | CPU µs per row | min | collections |\n|---|---:|---:|---:|")
    for name, runs in cpu.items():
        median, low = statistics.median(runs) / count * 1e6, min(runs) / count * 1e6
        print(f"| {name} | {median:.2f} | {low:.2f} | {collected[name]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
