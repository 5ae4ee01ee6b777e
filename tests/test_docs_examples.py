"""Every ```python block of the documentation (docs/**/*.md) runs against the test server.

A page's blocks run in order in one namespace, as top-level code in which ``await``,
``async with`` and ``async for`` work, with these names given: ``couchdb`` (a client
logged in as the admin), ``database`` (a new, empty database, deleted after the page),
``url``, ``user`` and ``password`` (the server's address and its admin). Databases a page
creates and leaves behind are deleted after it (system databases, ``_replicator`` say,
are left).

A block is left out by an HTML comment on the line before it (the reason is required):

    <!-- docs-test: skip: it needs a second server -->
    <!-- docs-test: couchdb-only: pouchdb-server has no partitions -->

``skip`` blocks never run; ``couchdb-only`` blocks are skipped on pouchdb-server only.
"""

from __future__ import annotations

import ast
import contextlib
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

from aiocouch import CouchDB, Database
from testserver.doc_examples import DOCS, KINDS, Block, blocks_of
from testserver.pouchdb_server import CouchServer


def pages() -> list[Path]:
    return sorted(page for page in DOCS.rglob("*.md") if blocks_of(page))


def compiled(block: Block) -> CodeType:
    return compile(
        block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )


def test_every_marker_names_a_known_kind_and_a_reason() -> None:
    for page in DOCS.rglob("*.md"):
        for block in blocks_of(page):
            if block.kind is not None:
                assert block.kind in KINDS, f"{block.where}: unknown docs-test kind"
                assert block.reason, f"{block.where}: a docs-test marker needs a reason"


def test_the_extraction_finds_blocks_in_order_and_their_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text\n\n```python\na = 1\n```\n\n```sh\nnot python\n```\n\n"
        "<!-- docs-test: couchdb-only: needs partitions -->\n```python\nb = 2\n```\n\n"
        "1. In a list:\n\n    ```python\n    if a:\n        c = 3\n    ```\n"
    )
    found = blocks_of(page)
    assert [block.code for block in found] == ["a = 1\n", "b = 2\n", "if a:\n    c = 3\n"]
    assert [(block.kind, block.reason) for block in found] == [
        (None, ""),
        ("couchdb-only", "needs partitions"),
        (None, ""),
    ]
    assert [block.line for block in found] == [4, 13, 19]


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(DOCS)))
async def test_the_examples_of_the_page_run(
    page: Path, couchdb: CouchDB, database: Database, couch_server: CouchServer
) -> None:
    before = set(await couchdb.keys())
    namespace: dict[str, Any] = {
        "__name__": "__docs__",
        "couchdb": couchdb,
        "database": database,
        "url": couch_server.url,
        "user": couch_server.user,
        "password": couch_server.password,
    }
    skipped, ran = [], 0
    try:
        for block in blocks_of(page):
            if block.kind == "skip" or (block.kind == "couchdb-only" and couch_server.is_pouchdb):
                skipped.append(f"{block.where} ({block.reason})")
                continue
            result = eval(compiled(block), namespace)
            if result is not None:  # a block with top-level await is a coroutine
                await result
            ran += 1
    finally:
        left = set(await couchdb.keys()) - before - {database.id}
        for name in sorted(name for name in left if not name.startswith("_")):
            with contextlib.suppress(Exception):
                await Database(couchdb, name).delete()
    if not ran:
        pytest.skip("no block of the page can run here: " + "; ".join(skipped))
    if skipped:
        print("blocks not run:", *skipped, sep="\n  ")
