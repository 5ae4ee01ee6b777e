"""What finding the changed documents of a bulk update costs, by kind of change.

A bulk update (``db.update_docs(ids)``) keeps a state of each document it reads and, on
exit, writes back only those whose data changed. This measures both steps of this
project's code in-process, without a server, over ``--count`` documents of
``bench/measure.py`` (about 350 bytes, with a ``_rev``): ``read`` (making the Documents
of a ``_bulk_get`` answer, their states included: ``Document._from_server_each``) and
the exit's check (``Document._dirty_of``) after each kind of change:

* ``none``: nothing changed;
* ``resized``: a field changed to a value of another length (``counter`` 1000 -> 10000);
* ``same_length``: a field changed to a value of the same length (``counter`` 1000 ->
  1001: counters, fixed-width timestamps, equal-length states);
* ``reordered``: a field taken out and put back (the same data, its keys in another
  order: unchanged).

Each tree runs in processes of its own, the trees taking turns, ``--repeat`` times; the
minimum CPU (``time.process_time``) of each step is printed, in milliseconds::

    .venv/bin/python bench/change_check.py --baseline 05aeca6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from single_cost import exported  # noqa: E402

CHANGES = ("none", "resized", "same_length", "reordered")

#: One process: the CPU of each step, once, as JSON.
_MEASURE = """
import gc, json, sys, time
sys.path.insert(0, sys.argv[2])
from measure import doc_id, make_doc
from aiocouch.document import Document
count = int(sys.argv[1])

def documents():
    return [
        {"_id": doc_id(i), "_rev": f"1-{i:032x}", "counter": 1000 + i % 1000, **make_doc(i)}
        for i in range(count)
    ]

def changed(kind):
    docs = Document._from_server_each(None, documents())
    for doc in docs:
        if kind == "resized":
            doc["counter"] = doc["counter"] * 10
        elif kind == "same_length":
            doc["counter"] = doc["counter"] + 1 if doc["counter"] < 1999 else 1000
        elif kind == "reordered":
            doc._data["type"] = doc._data.pop("type")
    return docs

spent = {}
data = documents()
gc.collect()
started = time.process_time()
Document._from_server_each(None, data)
spent["read"] = time.process_time() - started
for kind in sys.argv[3:]:
    docs = changed(kind)
    gc.collect()
    started = time.process_time()
    Document._dirty_of(docs)
    spent[kind] = time.process_time() - started
print(json.dumps(spent))
"""


def measure(src: str | None, count: int) -> dict[str, float]:
    """The CPU of each step in a fresh process importing ``src`` (None: this tree)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(count), str(BENCH), *CHANGES],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    spent: dict[str, float] = json.loads(result.stdout)
    return spent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=5_000, help="documents")
    parser.add_argument("--repeat", type=int, default=7, help="processes per tree")
    parser.add_argument("--baseline", help="also measure this commit's src/ (git archive)")
    args = parser.parse_args(argv)
    steps = ("read", *CHANGES)
    with exported(args.baseline) as old:
        trees = {"this tree": None, **({args.baseline: old} if args.baseline else {})}
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(args.repeat):
            for name, src in trees.items():
                samples[name].append(measure(src, args.count))
    print(f"{args.count:,} documents, minimum of {args.repeat} processes, CPU ms")
    print("| tree | " + " | ".join(steps) + " |")
    print("|---|" + "---:|" * len(steps))
    for name, runs in samples.items():
        cells = [f"{min(run[step] for run in runs) * 1000:.1f}" for step in steps]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
