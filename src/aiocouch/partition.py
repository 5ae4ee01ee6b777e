"""Partitioned databases: one partition's documents, views and Mango queries.

A database created with ``await couchdb.create(name, partitioned=True)`` (PUT
/{db}?partitioned=true; ``info()["props"]["partitioned"]`` is then true) keeps each
document in the partition its id names: ``"sensor-1:reading-7"`` is in ``sensor-1``, and
CouchDB refuses ids without a partition (BadRequestError), design documents apart.
``db.partition("sensor-1")`` is a :class:`Partition`, whose queries read that partition
only, from the one shard range that holds it. The views of a partitioned database are
partitioned unless their design document says ``"options": {"partitioned": false}``, and
CouchDB answers a query of such a view outside a partition with BadRequestError.

The queries are those of the database, sent below ``/{db}/_partition/{name}`` and streamed
the same way: :class:`PartitionAllDocsView` and :class:`PartitionView` are the
:class:`~aiocouch.view.AllDocsView` and :class:`~aiocouch.view.View` of one partition. A
server whose ``[query_server_config] partition_query_limit`` is set (it is not by default)
answers a partition's ``_all_docs`` and view queries without ``limit`` with at most that
many rows, and refuses a higher ``limit``; Mango queries are not limited so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypedDict, cast

from ._remote_partition import RemotePartition
from .document import Document
from .request import FindRequest
from .typing import JsonDict
from .view import AllDocsView, View

if TYPE_CHECKING:
    from .database import Database

__all__ = [
    "Partition",
    "PartitionAllDocsView",
    "PartitionFindRequest",
    "PartitionInfo",
    "PartitionView",
]


class PartitionInfo(TypedDict):
    """The answer of ``GET /{db}/_partition/{partition}``."""

    db_name: str
    partition: str
    doc_count: int
    doc_del_count: int
    sizes: dict[str, int]
    """``active`` and ``external`` sizes in bytes."""


class Partition(RemotePartition):
    """The partition ``name`` of the partitioned database ``database``; sends no request.

    Raises TypeError or BadRequestError for a name no partition can have: empty, starting
    with ``_``, holding ``:`` or a lone surrogate.
    """

    def __init__(self, database: Database, name: str) -> None:
        super().__init__(database, name)
        self.database = database

    def __repr__(self) -> str:
        return f"<Partition {self.name!r} of database {self.database.id!r}>"

    async def info(self) -> PartitionInfo:
        """Document counts and sizes of the partition: GET /{db}/_partition/{partition}.

        Raises BadRequestError if the database is not partitioned, NotFoundError if it
        does not exist.
        """
        return cast(PartitionInfo, await self._info())

    @property
    def all_docs(self) -> PartitionAllDocsView:
        """The partition's ``_all_docs`` view (no request)."""
        return PartitionAllDocsView(self)

    def docs(self, *, prefix: str | None = None, **params: Any) -> AsyncIterator[Document]:
        """The partition's documents, streamed, in id order: GET
        /{db}/_partition/{partition}/_all_docs?include_docs=true&params.

        ``prefix`` selects the ids that start with it (ids include the ``partition:``
        part). Raises BadRequestError (on iteration) if the database is not partitioned.
        """
        return self.all_docs.docs(prefix=prefix, **params)

    def akeys(self, **params: Any) -> AsyncIterator[str]:
        """The ids of the partition's documents, streamed: GET
        /{db}/_partition/{partition}/_all_docs?params (``prefix=`` as in :meth:`docs`).
        """
        return self.all_docs.ids(**params)

    def view(self, design_doc: str, view: str) -> PartitionView:
        """The view ``view`` of ``_design/{design_doc}`` in this partition (no request)."""
        return PartitionView(self, design_doc, view)

    def find(
        self, selector: Any, *, limit: int | None = None, **params: Any
    ) -> AsyncIterator[Document]:
        """The partition's documents matching a Mango ``selector``, page by page: POST
        /{db}/_partition/{partition}/_find (see :class:`~aiocouch.request.FindRequest`).

        Raises ValueError for ``fields=`` (documents are always whole) on iteration.
        """
        return PartitionFindRequest(self, selector, limit=limit, **params).__aiter__()

    async def explain(self, selector: Any, **params: Any) -> JsonDict:
        """How CouchDB would run a Mango query in the partition: POST
        /{db}/_partition/{partition}/_explain with ``{"selector": selector, **params}``.

        Returns CouchDB's answer (``index``, ``opts``, ``mrargs``...). Raises
        BadRequestError for a query CouchDB refuses.
        """
        return await self._explain(selector, **params)


class _InPartition:
    """Sends a query of the database below ``/{db}/_partition/{name}`` instead."""

    partition: Partition

    @property
    def _scope(self) -> str:
        return self.partition.endpoint

    @property
    def _scope_subject(self) -> str:
        return self.partition._subject


class PartitionAllDocsView(_InPartition, AllDocsView):
    """``/{db}/_partition/{partition}/_all_docs``: the partition's documents, keyed by id."""

    def __init__(self, partition: Partition) -> None:
        super().__init__(partition.database)
        self.partition = partition


class PartitionView(_InPartition, View):
    """The view ``id`` of ``_design/{design_doc}`` in one partition:
    ``/{db}/_partition/{partition}/_design/{ddoc}/_view/{view}``."""

    def __init__(self, partition: Partition, design_doc: str, id: str) -> None:
        super().__init__(partition.database, design_doc, id)
        self.partition = partition


class PartitionFindRequest(_InPartition, FindRequest):
    """The partition's documents matching ``selector``: POST
    /{db}/_partition/{partition}/_find, paged as :class:`~aiocouch.request.FindRequest`."""

    def __init__(
        self, partition: Partition, selector: Any, *, limit: int | None = None, **params: Any
    ) -> None:
        super().__init__(partition.database, selector, limit=limit, **params)
        self.partition = partition
