"""The documents floor: the raw floor's bulk workloads with the least document model.

aiocouch 4.0.1's bulk calls hand the caller a Document per document (``bulk.create(id,
data=...)`` returns one; ``async for doc in bulk`` yields them) and write back only the
documents that changed, each Document taking its new revision. This client does that and
nothing else, on the raw floor's connections and requests (``bench/raw_client.py``):

* a document is an object of three slots (id, data, the JSON it was last synced as), with
  item access by Python methods, as a Document's;
* a bulk update reads with POST ``_bulk_get`` (as this project does), takes each
  document out of its result without a check, and keeps each one's JSON, encoded by one
  ``orjson.dumps`` of all of them split at marks (this project's cheapest way);
* on exit, every document is encoded the same way, those whose JSON differs from their
  state are the changed ones (different bytes: no decoding of equal-length ones), and
  their bodies go out in batches of ``bench/worker.py``'s ``BULK_BATCH``, one after the
  other; a batch of new documents only is encoded at once, as its request body, which
  becomes their shared state (as this project does);
* each answer item is matched to its document (by position when the ids are in order,
  else by id), and a saved document takes its revision and its new state.

What it leaves out and a client must do: checking ids and answers, integers beyond 64
bits, deleted or missing or conflicted documents, batches by bytes, time limits, retries
and the confirmation of a repeated write, errors. Its figures are a lower bound for any
client with 4.0.1's bulk interface in Python; ``bench/worker.py`` runs it as the client
``floor-docs`` (``bulk_create`` and ``bulk_update`` only)::

    .venv/bin/python bench/run.py --clients ours aiohttp floor floor-docs \\
        --workloads bulk_create bulk_update --repeat 5 --no-save
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from itertools import repeat
from operator import ne
from types import TracebackType
from typing import Any

import orjson
from measure import Body, new_docs, seeded_ids
from raw_client import FloorWorkloads

__all__ = ["DocumentFloorWorkloads"]

_MARK = b"\x1f" * 8
_PARTS: list[Any] = [orjson.Fragment(_MARK)]


def encode_each(values: list[dict[str, Any]]) -> list[bytes]:
    """The JSON of each of ``values``: one ``orjson.dumps`` with a mark between them, split."""
    mixed = _PARTS * (2 * len(values) - 1)
    mixed[::2] = values
    pieces = orjson.dumps(mixed).split(b"," + _MARK + b",")
    pieces[0] = pieces[0][1:]
    pieces[-1] = pieces[-1][:-1]
    return pieces


class FloorDocument:
    """A document of the model: its id, its data, and the JSON it was last synced as."""

    __slots__ = ("data", "id", "state")
    id: str
    data: dict[str, Any]
    state: bytes | None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value


class FloorBulk:
    """A bulk operation of the model: documents collected (or read on enter), the changed
    ones written on exit with POST ``_bulk_docs``."""

    def __init__(self, workloads: DocumentFloorWorkloads, ids: list[str] | None = None) -> None:
        self._workloads = workloads
        self._ids = ids
        self.docs: list[FloorDocument] = []
        self.ok: list[FloorDocument] = []
        self.error: list[FloorDocument] = []

    def create(self, id: str, *, data: dict[str, Any]) -> FloorDocument:
        """A new document ``id`` holding ``data``."""
        doc = FloorDocument()
        doc.id = id
        data["_id"] = id
        doc.data = data
        doc.state = None
        self.docs.append(doc)
        return doc

    async def __aiter__(self) -> AsyncIterator[FloorDocument]:
        for doc in self.docs:
            yield doc

    async def __aenter__(self) -> FloorBulk:
        if self._ids:
            self.docs = await self._workloads.read(self._ids)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            return
        docs = self.docs
        states = [doc.state for doc in docs]
        if states.count(None) == len(states):
            # (new documents: each batch encoded at once, its body their shared state)
            await self._workloads.write(docs, None, self.ok, self.error)
            return
        encoded = encode_each([doc.data for doc in docs])
        changed = list(map(ne, states, encoded))
        docs = [doc for doc, dirty in zip(docs, changed) if dirty]
        encoded = [body for body, dirty in zip(encoded, changed) if dirty]
        await self._workloads.write(docs, encoded, self.ok, self.error)


class DocumentFloorWorkloads(FloorWorkloads):
    """The raw floor's requests, through :class:`FloorBulk` (bulk workloads only)."""

    async def read(self, ids: list[str]) -> list[FloorDocument]:
        """POST ``_bulk_get`` for ``ids``: their documents, each with its JSON as its state."""
        body = orjson.dumps({"docs": [{"id": id} for id in ids]})
        answer = await self.pool.request(b"POST", f"/{self.db}/_bulk_get", body)
        datas = [result["docs"][0]["ok"] for result in answer["results"]]
        docs: list[FloorDocument] = []
        append = docs.append
        for data, state in zip(datas, encode_each(datas)):
            doc = FloorDocument()
            doc.id = data["_id"]
            doc.data = data
            doc.state = state
            append(doc)
        return docs

    async def write(
        self,
        docs: list[FloorDocument],
        encoded: list[bytes] | None,
        ok: list[FloorDocument],
        error: list[FloorDocument],
    ) -> None:
        """POST ``_bulk_docs`` for ``docs`` (their JSON ``encoded``, or None: new ones,
        each batch encoded at once) in batches; each saved document takes its revision and
        its JSON (or its batch's body) as its state."""
        path, request, size = f"/{self.db}/_bulk_docs", self.pool.request, self.batch
        for start in range(0, len(docs), size):
            batch = docs[start : start + size]
            if encoded is None:
                body = orjson.dumps({"docs": [doc.data for doc in batch]})
                bodies: Iterable[bytes] = repeat(body)
            else:
                bodies = encoded[start : start + size]
                body = b'{"docs":[' + b",".join(bodies) + b"]}"
            items = await request(b"POST", path, body)
            ids = [doc.id for doc in batch]
            if [item.get("id") for item in items] != ids:
                by_id = {item.get("id"): item for item in items}
                items = [by_id.get(id, {}) for id in ids]
            for doc, body, item in zip(batch, bodies, items):
                if "rev" in item and "error" not in item:
                    doc.data["_rev"] = item["rev"]
                    doc.state = body
                    ok.append(doc)
                else:
                    error.append(doc)

    def bulk_create(self) -> Body:
        """``count`` new documents created in one :class:`FloorBulk`."""
        bodies = new_docs(self.count)

        async def run() -> tuple[int, int]:
            async with FloorBulk(self) as bulk:
                for identifier, data in bodies:
                    bulk.create(identifier, data=data)
            if bulk.error:
                raise RuntimeError(f"{len(bulk.error)} documents were not created")
            return len(bulk.ok), 0

        return run

    def bulk_update(self) -> Body:
        """``count`` documents modified in one :class:`FloorBulk` reading them."""
        ids = seeded_ids(self.count)

        async def run() -> tuple[int, int]:
            checksum = 0
            async with FloorBulk(self, ids) as bulk:
                async for doc in bulk:
                    doc["counter"] = doc["index"] * 2
                    checksum += doc["counter"]
            if bulk.error:
                raise RuntimeError(f"{len(bulk.error)} documents were not updated")
            return len(bulk.ok), checksum

        return run
