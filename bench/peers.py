"""One benchmark measurement of another CouchDB client library, in its own process.

Run by ``bench/run.py`` with the interpreter of the library's virtual environment
(``bench/.venv-<library>``); same command line and JSON output as ``bench/worker.py``::

    bench/.venv-couchdb3/bin/python -I bench/peers.py --client couchdb3 --workload get \\
        --url http://127.0.0.1:5984 --db bench_iter_100000 --count 500 --db-size 100000

Every workload goes through the library's documented public calls, the cheapest one the
library offers for it (one PUT per created document, one request for a whole listing);
a library without a call for a workload raises :class:`measure.Unsupported` naming it.
The synchronous libraries keep several requests in flight with a thread pool
(:func:`measure.threaded_map`), the asynchronous ones with :func:`measure.bounded_gather`.
Bulk writes go in batches of :data:`BULK_BATCH` documents like the other clients'.

Clients: ``couchdb3`` (sync, httpx), ``couchdb3-async`` (``couchdb3.aio``), ``ibmcloudant``
(IBM's SDK, requests), ``couchdb-python`` (``CouchDB`` on PyPI), ``chaise`` (httpx) and
``aiocouchdb3`` (aiohttp). Requests are counted by the proxy that ``run.py`` puts in
front of the server, not here.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

# ``python -I`` leaves the script's directory out of sys.path; measure.py lives beside this.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import (
    Body,
    Measurement,
    Result,
    SyncBody,
    Unsupported,
    bounded_gather,
    concurrency_of,
    measure,
    measure_sync,
    new_docs,
    read_ids,
    seeded_ids,
    threaded_map,
    worker_parser,
)

#: The client names and the PyPI distribution each one runs.
DISTRIBUTIONS = {
    "couchdb3": "couchdb3",
    "couchdb3-async": "couchdb3",
    "ibmcloudant": "ibmcloudant",
    "couchdb-python": "CouchDB",
    "chaise": "chaise",
    "aiocouchdb3": "aiocouchdb3",
}
CLIENTS = tuple(DISTRIBUTIONS)
#: Documents per ``_bulk_docs`` request (bench/worker.py's BULK_BATCH).
BULK_BATCH = 10_000
#: Batches in flight at once for the asynchronous libraries (bench/worker.py's).
BULK_IN_FLIGHT = 4


@dataclass
class Settings:
    """What a workload works on."""

    url: str
    user: str
    password: str
    db: str
    count: int
    db_size: int
    workload: str


def batches(items: Sequence[Any]) -> list[Sequence[Any]]:
    """``items`` cut into :data:`BULK_BATCH`-sized slices."""
    return [items[i : i + BULK_BATCH] for i in range(0, len(items), BULK_BATCH)]


def failed_items(answers: Sequence[Any]) -> int:
    """How many ``_bulk_docs`` result items report no success."""
    return sum(1 for item in answers if not item.get("ok"))


# -- the workloads, over each library's primitives ---------------------------------------


class Workloads:
    """What every library's workloads share: settings, and the workloads it cannot do."""

    #: workload -> the public call the library lacks for it.
    unsupported: ClassVar[dict[str, str]] = {
        "db_create_save": "no db.create() (an aiocouch call); its one-PUT create is create_save"
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def prepare(self, workload: str) -> Any:
        """The timed body of ``workload``; raises :class:`Unsupported` for a missing call."""
        if workload in self.unsupported:
            raise Unsupported(self.unsupported[workload])
        return getattr(self, workload)()


class SyncWorkloads(Workloads):
    """The workloads of a synchronous library, over the primitives a subclass implements."""

    def save_new(self, identifier: str, data: dict[str, Any]) -> None:
        """Creates the document ``identifier``: one PUT."""
        raise NotImplementedError

    def fetch(self, identifier: str) -> dict[str, Any]:
        """The document ``identifier``, as a mutable mapping: one GET."""
        raise NotImplementedError

    def save(self, doc: dict[str, Any]) -> None:
        """Saves a fetched, changed document: one PUT."""
        raise NotImplementedError

    def bulk_save(self, docs: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        """Writes ``docs`` with one ``_bulk_docs`` request; the result items."""
        raise NotImplementedError

    def all_docs(self) -> Iterator[dict[str, Any]]:
        """Every document of the database, from one listing request."""
        raise NotImplementedError

    def fetch_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The documents ``ids`` with one request."""
        raise NotImplementedError

    def create_save(self) -> SyncBody:
        bodies = new_docs(self.settings.count)

        def run() -> tuple[int, int]:
            for identifier, data in bodies:
                self.save_new(identifier, data)
            return len(bodies), 0

        return run

    def get(self) -> SyncBody:
        ids = read_ids(self.settings.count, self.settings.db_size)

        def run() -> tuple[int, int]:
            return len(ids), sum(self.fetch(identifier)["index"] for identifier in ids)

        return run

    def get_concurrent(self) -> SyncBody:
        ids = read_ids(self.settings.count, self.settings.db_size)
        limit = concurrency_of(self.settings.workload)

        def index(identifier: str) -> int:
            value: int = self.fetch(identifier)["index"]
            return value

        def run() -> tuple[int, int]:
            return len(ids), sum(threaded_map(index, ids, limit))

        return run

    def get_throughput(self) -> SyncBody:
        return self.get_concurrent()

    def update(self) -> SyncBody:
        ids = seeded_ids(self.settings.count)

        def run() -> tuple[int, int]:
            checksum = 0
            for identifier in ids:
                doc = self.fetch(identifier)
                doc["counter"] = doc["index"] * 2
                self.save(doc)
                checksum += doc["counter"]
            return len(ids), checksum

        return run

    def bulk_create(self) -> SyncBody:
        docs = [{"_id": identifier, **data} for identifier, data in new_docs(self.settings.count)]

        def run() -> tuple[int, int]:
            answers = [item for batch in batches(docs) for item in self.bulk_save(batch)]
            if failed_items(answers):
                raise RuntimeError(f"{failed_items(answers)} documents were not created")
            return len(answers), 0

        return run

    def iterate_all(self) -> SyncBody:
        def run() -> tuple[int, int]:
            items = checksum = 0
            for doc in self.all_docs():
                items += 1
                checksum += doc["index"]
            return items, checksum

        return run

    def bulk_update(self) -> SyncBody:
        ids = seeded_ids(self.settings.count)

        def run() -> tuple[int, int]:
            docs = self.fetch_many(ids)
            checksum = 0
            for doc in docs:
                doc["counter"] = doc["index"] * 2
                checksum += doc["counter"]
            answers = [item for batch in batches(docs) for item in self.bulk_save(batch)]
            if failed_items(answers):
                raise RuntimeError(f"{failed_items(answers)} documents were not updated")
            return len(answers), checksum

        return run


class AsyncWorkloads(Workloads):
    """The workloads of an asynchronous library, over the primitives a subclass implements."""

    async def save_new(self, identifier: str, data: dict[str, Any]) -> None:
        """Creates the document ``identifier``: one PUT."""
        raise NotImplementedError

    async def fetch(self, identifier: str) -> Any:
        """The document ``identifier``, as the library hands it out: one GET."""
        raise NotImplementedError

    def content(self, doc: Any) -> Any:
        """The mutable mapping of the document's fields (the document itself by default)."""
        return doc

    async def save(self, doc: Any) -> None:
        """Saves a fetched, changed document: one PUT."""
        raise NotImplementedError

    async def bulk_save(self, docs: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        """Writes ``docs`` with one ``_bulk_docs`` request; the result items."""
        raise NotImplementedError

    def all_docs(self) -> AsyncIterator[Any]:
        """Every document of the database, from one listing request."""
        raise NotImplementedError

    async def fetch_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The documents ``ids`` with one request."""
        raise NotImplementedError

    def create_save(self) -> Body:
        bodies = new_docs(self.settings.count)

        async def run() -> tuple[int, int]:
            for identifier, data in bodies:
                await self.save_new(identifier, data)
            return len(bodies), 0

        return run

    async def _index(self, identifier: str) -> int:
        value: int = self.content(await self.fetch(identifier))["index"]
        return value

    def get(self) -> Body:
        ids = read_ids(self.settings.count, self.settings.db_size)

        async def run() -> tuple[int, int]:
            checksum = 0
            for identifier in ids:
                checksum += await self._index(identifier)
            return len(ids), checksum

        return run

    def get_concurrent(self) -> Body:
        ids = read_ids(self.settings.count, self.settings.db_size)
        limit = concurrency_of(self.settings.workload)

        async def run() -> tuple[int, int]:
            return len(ids), sum(await bounded_gather(self._index, ids, limit))

        return run

    def get_throughput(self) -> Body:
        return self.get_concurrent()

    def update(self) -> Body:
        ids = seeded_ids(self.settings.count)

        async def run() -> tuple[int, int]:
            checksum = 0
            for identifier in ids:
                doc = await self.fetch(identifier)
                fields = self.content(doc)
                fields["counter"] = fields["index"] * 2
                await self.save(doc)
                checksum += fields["counter"]
            return len(ids), checksum

        return run

    async def _bulk_save_all(self, docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        answers = await bounded_gather(self.bulk_save, batches(docs), BULK_IN_FLIGHT)
        return [item for answer in answers for item in answer]

    def bulk_create(self) -> Body:
        docs = [{"_id": identifier, **data} for identifier, data in new_docs(self.settings.count)]

        async def run() -> tuple[int, int]:
            answers = await self._bulk_save_all(docs)
            if failed_items(answers):
                raise RuntimeError(f"{failed_items(answers)} documents were not created")
            return len(answers), 0

        return run

    def iterate_all(self) -> Body:
        async def run() -> tuple[int, int]:
            items = checksum = 0
            async for doc in self.all_docs():
                items += 1
                checksum += self.content(doc)["index"]
            return items, checksum

        return run

    def bulk_update(self) -> Body:
        ids = seeded_ids(self.settings.count)

        async def run() -> tuple[int, int]:
            docs = await self.fetch_many(ids)
            checksum = 0
            for doc in docs:
                doc["counter"] = doc["index"] * 2
                checksum += doc["counter"]
            answers = await self._bulk_save_all(docs)
            if failed_items(answers):
                raise RuntimeError(f"{failed_items(answers)} documents were not updated")
            return len(answers), checksum

        return run


# -- the libraries -----------------------------------------------------------------------

NO_BULK_DOCS = "no call for POST /{db}/_bulk_docs"


class Couchdb3(SyncWorkloads):
    """couchdb3's synchronous ``Server`` / ``Database`` (httpx)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        import couchdb3

        self.server = couchdb3.Server(settings.url, user=settings.user, password=settings.password)
        self.db = self.server.get(settings.db)

    def warm_up(self) -> None:
        self.server.up()

    def close(self) -> None:
        pass

    def save_new(self, identifier: str, data: dict[str, Any]) -> None:
        self.db.save({"_id": identifier, **data})

    def fetch(self, identifier: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.db.get(identifier)
        return doc

    def save(self, doc: dict[str, Any]) -> None:
        self.db.save(doc)

    def bulk_save(self, docs: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        answers: list[dict[str, Any]] = self.db.bulk_docs(list(docs))
        return answers

    def all_docs(self) -> Iterator[dict[str, Any]]:
        return (row.doc for row in self.db.all_docs(include_docs=True).rows)

    def fetch_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        answer = self.db.bulk_get([{"id": identifier} for identifier in ids])
        return [item["docs"][0]["ok"] for item in answer]


class Couchdb3Async(AsyncWorkloads):
    """couchdb3's asynchronous ``AsyncServer`` / ``AsyncDatabase`` (``couchdb3.aio``, httpx)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        from couchdb3.aio import AsyncServer

        self.server = AsyncServer(settings.url, user=settings.user, password=settings.password)

    async def warm_up(self) -> None:
        self.db = await self.server.get(self.settings.db)
        await self.server.up()

    async def close(self) -> None:
        await self.server.aclose()

    async def save_new(self, identifier: str, data: dict[str, Any]) -> None:
        await self.db.save({"_id": identifier, **data})

    async def fetch(self, identifier: str) -> Any:
        return await self.db.get(identifier)

    async def save(self, doc: Any) -> None:
        await self.db.save(doc)

    async def bulk_save(self, docs: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        answers: list[dict[str, Any]] = await self.db.bulk_docs(list(docs))
        return answers

    async def all_docs(self) -> AsyncIterator[Any]:  # type: ignore[override]
        for row in (await self.db.all_docs(include_docs=True)).rows:
            yield row.doc

    async def fetch_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        answer = await self.db.bulk_get([{"id": identifier} for identifier in ids])
        return [item["docs"][0]["ok"] for item in answer]


class IbmCloudant(SyncWorkloads):
    """IBM's ``ibmcloudant`` SDK: ``CloudantV1`` with basic authentication (requests)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        from ibm_cloud_sdk_core.authenticators import BasicAuthenticator
        from ibmcloudant.cloudant_v1 import CloudantV1

        self.service = CloudantV1(
            authenticator=BasicAuthenticator(settings.user, settings.password)
        )
        self.service.set_service_url(settings.url)
        self.db = settings.db

    def warm_up(self) -> None:
        self.service.get_server_information().get_result()

    def close(self) -> None:
        pass

    def save_new(self, identifier: str, data: dict[str, Any]) -> None:
        self.service.put_document(db=self.db, doc_id=identifier, document=data).get_result()

    def fetch(self, identifier: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.service.get_document(db=self.db, doc_id=identifier).get_result()
        return doc

    def save(self, doc: dict[str, Any]) -> None:
        self.service.put_document(db=self.db, doc_id=doc["_id"], document=doc).get_result()

    def bulk_save(self, docs: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        from ibmcloudant.cloudant_v1 import BulkDocs

        answer = self.service.post_bulk_docs(db=self.db, bulk_docs=BulkDocs(docs=list(docs)))
        items: list[dict[str, Any]] = answer.get_result()
        return items

    def all_docs(self) -> Iterator[dict[str, Any]]:
        answer = self.service.post_all_docs(db=self.db, include_docs=True).get_result()
        return (row["doc"] for row in answer["rows"])

    def fetch_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        answer = self.service.post_all_docs(
            db=self.db, keys=list(ids), include_docs=True
        ).get_result()
        return [row["doc"] for row in answer["rows"]]


class CouchdbPython(SyncWorkloads):
    """couchdb-python (``CouchDB`` 1.2 on PyPI): ``couchdb.Server`` / ``Database``."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        import couchdb

        self.server = couchdb.Server(settings.url)
        self.server.resource.credentials = (settings.user, settings.password)

    def warm_up(self) -> None:
        self.db = self.server[self.settings.db]
        self.server.version()

    def close(self) -> None:
        pass

    def save_new(self, identifier: str, data: dict[str, Any]) -> None:
        self.db.save({"_id": identifier, **data})

    def fetch(self, identifier: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.db[identifier]
        return doc

    def save(self, doc: dict[str, Any]) -> None:
        self.db.save(doc)

    def bulk_save(self, docs: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        return [{"ok": ok, "id": doc_id} for ok, doc_id, _ in self.db.update(list(docs))]

    def all_docs(self) -> Iterator[dict[str, Any]]:
        return (row.doc for row in self.db.view("_all_docs", include_docs=True))

    def fetch_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        rows = self.db.view("_all_docs", keys=list(ids), include_docs=True)
        return [row.doc for row in rows]


class Chaise(AsyncWorkloads):
    """chaise's dictionary documents (``chaise.dictful``: ``BasicSession``, httpx)."""

    unsupported: ClassVar[dict[str, str]] = {
        **Workloads.unsupported,
        "bulk_create": NO_BULK_DOCS,
        "bulk_update": NO_BULK_DOCS,
    }

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.session: Any = None

    async def warm_up(self) -> None:
        # chaise's SessionPool first checks GET /_up, which pouchdb-server does not have;
        # the session's public constructor takes the httpx client and the root URL. The
        # time limit is couchdb3's default (300 s): httpx's own 5 s ends a 100,000-document
        # _all_docs before its first byte on a loaded machine.
        import httpx
        from chaise.dictful import BasicSession

        client = httpx.AsyncClient(
            auth=(self.settings.user, self.settings.password), timeout=httpx.Timeout(300)
        )
        self.session = BasicSession(client, httpx.URL(self.settings.url))
        self.db = await self.session.get_db(self.settings.db)

    async def close(self) -> None:
        pass

    async def save_new(self, identifier: str, data: dict[str, Any]) -> None:
        from chaise.dictful import Document

        await self.db.attempt_put(Document(data), identifier)

    async def fetch(self, identifier: str) -> Any:
        return await self.db.get(identifier)

    async def save(self, doc: Any) -> None:
        await self.db.attempt_put(doc)

    async def all_docs(self) -> AsyncIterator[Any]:  # type: ignore[override]
        async for ref in self.db.iter_all_docs(include_docs=True):
            yield await ref.doc()  # pre-loaded by include_docs: no request


class Aiocouchdb3(AsyncWorkloads):
    """aiocouchdb3 (aiohttp): ``connect(url).with_login(...)``, typed documents."""

    unsupported: ClassVar[dict[str, str]] = {
        **Workloads.unsupported,
        "bulk_create": NO_BULK_DOCS,
        "bulk_update": NO_BULK_DOCS,
        "iterate_all": "no call for _all_docs (get_view reads design-document views only)",
    }

    async def warm_up(self) -> None:
        import aiocouchdb3

        # by name: aiohttp's cookie jar keeps no cookie for an IP address, so against
        # 127.0.0.1 the login's session cookie is dropped and every request goes out
        # anonymous (which pouchdb-server lets read, and which costs it less)
        self.connection = aiocouchdb3.connect(_by_name(self.settings.url))
        await self.connection.open()
        self.session = self.connection.with_login(self.settings.user, self.settings.password)
        await self.session.open()
        self.db = self.session.db(self.settings.db)
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()
        await self.session.close()
        await self.connection.close()

    async def save_new(self, identifier: str, data: dict[str, Any]) -> None:
        from aiocouchdb3 import NewCouchDocument

        await self.db.create_doc(NewCouchDocument(identifier, data))

    async def fetch(self, identifier: str) -> Any:
        return await self.db.get_doc(identifier)

    def content(self, doc: Any) -> Any:
        return doc.content

    async def save(self, doc: Any) -> None:
        from aiocouchdb3 import ExistingCouchDocument

        await self.db.update_doc(ExistingCouchDocument(doc.id, doc.revision, doc.content))


def _by_name(url: str) -> str:
    """``url`` with a loopback address written ``localhost``."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "::1"):
        return url
    netloc = f"localhost:{parts.port}" if parts.port else "localhost"
    return urlunsplit(parts._replace(netloc=netloc))


LIBRARIES: dict[str, type[Workloads]] = {
    "couchdb3": Couchdb3,
    "couchdb3-async": Couchdb3Async,
    "ibmcloudant": IbmCloudant,
    "couchdb-python": CouchdbPython,
    "chaise": Chaise,
    "aiocouchdb3": Aiocouchdb3,
}


# -- main ----------------------------------------------------------------------------------


def result(
    settings: Settings, client: str, measured: Measurement | None, note: str | None
) -> Result:
    """The JSON line of a run; ``measured`` None with the reason ``note`` when unsupported."""
    distribution = DISTRIBUTIONS[client]
    path = str(importlib.import_module(distribution.lower()).__file__ or "")
    library = f"{distribution} {version(distribution)}"
    if measured is None:
        return Result(client, settings.workload, 0.0, 0.0, 0.0, 0, 0, 0, None, library, path, note)
    return Result.of(
        client, settings.workload, measured, requests=0, library=library, library_path=path
    )


def run_sync(client: str, library: SyncWorkloads, settings: Settings) -> Result:
    """Warms the library up (connection, imports), then measures only the workload."""
    try:
        body = library.prepare(settings.workload)
    except Unsupported as exc:
        return result(settings, client, None, str(exc))
    library.warm_up()  # type: ignore[attr-defined]
    measured = measure_sync(body)
    library.close()  # type: ignore[attr-defined]
    return result(settings, client, measured, None)


async def run_async(client: str, library: AsyncWorkloads, settings: Settings) -> Result:
    """The same for an asynchronous library."""
    try:
        body = library.prepare(settings.workload)
    except Unsupported as exc:
        return result(settings, client, None, str(exc))
    await library.warm_up()  # type: ignore[attr-defined]
    measured = await measure(body)
    await library.close()  # type: ignore[attr-defined]
    return result(settings, client, measured, None)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of one run (bench/worker.py's)."""
    parser = worker_parser(__doc__.split("\n", 1)[0], CLIENTS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one measurement and prints it as one JSON line."""
    args = parse_args(argv)
    settings = Settings(
        url=args.url,
        user=os.environ.get("COUCHDB_USER", "admin"),
        password=os.environ.get("COUCHDB_PASSWORD", "password"),
        db=args.db,
        count=args.count,
        db_size=args.db_size,
        workload=args.workload,
    )
    library = LIBRARIES[args.client](settings)
    if isinstance(library, SyncWorkloads):
        outcome = run_sync(args.client, library, settings)
    else:
        assert isinstance(library, AsyncWorkloads)
        outcome = asyncio.run(run_async(args.client, library, settings))
    print(json.dumps(asdict(outcome)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
