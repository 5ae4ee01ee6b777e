"""Documents: a local dict-like copy of a CouchDB document, fetched and saved explicitly."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import ItemsView, KeysView, Sequence, ValuesView
from itertools import compress
from operator import attrgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _json, _paths, _snapshot, revisions
from .attachment import Attachment
from .cluster import check_quorum
from .exception import ConflictError, NotFoundError
from .remote import HTTPResponse, RemoteDocument
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database

__all__ = ["Document", "SecurityDocument"]

_DATA = attrgetter("_data")
_SYNCED_SOURCE = attrgetter("_synced_source")
_SYNCED_KEY = attrgetter("_synced_key")
_new_object = object.__new__


class Document(RemoteDocument):
    """A local representation of the CouchDB document ``id`` in ``database``.

    It behaves like a dict holding the document's data. Constructing it sends no request;
    :meth:`fetch` and :meth:`save` do. ``data``, if given, must be a dict and is used by
    reference (its ``_id`` is set to ``id``).
    """

    def __init__(self, database: Database | None, id: str, data: JsonDict | None = None) -> None:
        _paths.validate_document_id(id)
        if data is not None and not isinstance(data, dict):
            raise TypeError(f"The data of a document must be a dict, not {type(data).__name__}")
        # (RemoteDocument.__init__, without the call: bulk creation makes many)
        self._database = database
        self.id = id
        self._data: JsonDict = data if data is not None else {}
        self._data["_id"] = id
        # The synced state: JSON text (None: never synced), the field of it that holds
        # the data (None: all of it), the revision. Three attributes, not a tuple: a
        # tuple per document is one more object for the collector to walk in bulk work.
        # Every constructor sets all of them, in this order: an attribute added later
        # costs CPython several times as much, as the instance's values are laid out
        # when it is made.
        self._synced_source: bytes | str | _snapshot.BatchState | None = None
        self._synced_key: str | int | None = None
        self._synced_rev: Any = None

    @classmethod
    def _from_server(
        cls,
        database: Database | None,
        doc: JsonDict,
        source: bytes | str | None = None,
        *,
        source_key: str | None = "doc",
    ) -> Document:
        """A clean document holding ``doc`` as the server sent it (no request).

        ``source``, the JSON text that held ``doc`` (under ``source_key``, or as a whole
        when that is None), is kept as the synced state: iterating many documents then
        costs no encoding at all.
        """
        document = _new_object(cls)
        document._database = database
        document.id = doc["_id"]
        document._data = doc
        if source is None:
            document._synced_source = _snapshot.encode(doc)
            document._synced_key = None
        else:
            document._synced_source = source
            document._synced_key = source_key
        document._synced_rev = doc.get("_rev")
        return document

    @classmethod
    def _from_server_each(cls, database: Database | None, docs: list[JsonDict]) -> list[Document]:
        """Clean documents holding ``docs`` as the server sent them (no request).

        Each keeps the canonical JSON of its data as its synced state
        (:data:`._snapshot.CANONICAL`): for documents decoded from one shared answer, which
        holds no text of each, that costs one encoding in C and makes the change check a
        comparison of lengths or bytes (and a canonical encoding where the length is the
        same).
        """
        documents: list[Document] = []
        append = documents.append
        # (Document._from_server inlined: a call with a keyword per document cost a fifth
        # of the whole)
        for doc, source in zip(docs, _snapshot.encode_each_canonical(docs)):
            document = _new_object(cls)
            document._database = database
            document.id = doc["_id"]
            document._data = doc
            document._synced_source = source
            document._synced_key = _snapshot.CANONICAL
            document._synced_rev = doc.get("_rev")
            append(document)
        return documents

    @classmethod
    def _unchecked(cls, database: Database | None, id: str, data: JsonDict | None) -> Document:
        """A new local document as ``__init__`` makes it, for an ``id`` and a dict (or
        None) ``data`` the caller has checked: bulk creation skips a second check."""
        document = _new_object(cls)
        document._database = database
        document.id = id
        if data is None:
            data = {}
        data["_id"] = id
        document._data = data
        document._synced_source = None
        document._synced_key = None
        document._synced_rev = None
        return document

    # --- state ---

    def _mark_synced(self, encoded: bytes | str) -> None:
        """Records ``encoded``, the JSON of the data, as the server's state."""
        self._synced_source = encoded
        self._synced_key = None
        self._synced_rev = self._data.get("_rev")

    def _update_cache(self, new_cache: JsonDict, source: bytes | None = None) -> None:
        """Replaces the local data with ``new_cache`` as the server's copy (clean);
        ``source``: its JSON text, if the server's answer is at hand."""
        self._data = new_cache
        self._mark_synced(_snapshot.encode(new_cache) if source is None else source)

    def _update_rev_after_save(self, result: JsonDict) -> None:
        """Takes the revision of a successful write; the data is then clean."""
        self._data["_rev"] = result["rev"]
        self._mark_synced(_snapshot.encode(self._data))

    @property
    def _dirty_cache(self) -> bool:
        """True if the local data differs from the last fetched or saved state."""
        return self._encode_if_dirty() is not None

    def _encode_if_dirty(self) -> tuple[bytes, bytes] | None:
        """``(request body, new synced state)`` if the data changed since the last sync
        (both the same bytes: the JSON of the data, ``_rev`` included)."""
        encoded = _snapshot.encode(self._data)
        source = self._synced_source
        if source is None:
            return encoded, encoded
        if not _snapshot.changed(source, self._synced_key, self._synced_rev, self._data, encoded):
            return None
        return encoded, encoded

    @staticmethod
    def _dirty_of(documents: list[Document]) -> tuple[list[Document], list[bytes]]:
        """Those of ``documents`` whose data changed since their last sync, and the JSON of
        each (as :meth:`_encode_if_dirty`: the request body and the new synced state)."""
        datas = list(map(_DATA, documents))
        encoded = _snapshot.encode_each(datas)
        sources = list(map(_SYNCED_SOURCE, documents))
        if sources.count(None) == len(sources):
            # (new documents: all of them go; counted, not put into a set, which would
            # hash every state's bytes)
            return documents, encoded
        if set(map(_SYNCED_KEY, documents)) == {_snapshot.CANONICAL}:
            # (states that are the canonical encoding of the synced data, as a bulk read
            # keeps them: compared all at once, mostly in C)
            dirty = _snapshot.changed_canonical(sources, datas, encoded)
            if all(dirty):
                return documents, encoded  # (as after a bulk update's usual change)
        else:
            changed = _snapshot.changed
            dirty = [
                source is None or changed(source, doc._synced_key, doc._synced_rev, doc._data, data)
                for source, doc, data in zip(sources, documents, encoded)
            ]
        return list(compress(documents, dirty)), list(compress(encoded, dirty))

    @staticmethod
    def _new_body(documents: list[Document]) -> bytes | None:
        """The ``_bulk_docs`` request body ``{"docs": [...]}`` of ``documents`` if none of
        them was ever synced (all are changes then), encoded at once; else None."""
        if documents[0]._synced_source is not None:
            return None  # (the first is looked at alone: bulk updates start with synced ones)
        if list(map(_SYNCED_SOURCE, documents)).count(None) != len(documents):
            return None  # (counted as _dirty_of counts them: no state's bytes hashed)
        return _json.dumps({"docs": list(map(_DATA, documents))})

    def _saved(
        self, encoded: bytes | _snapshot.BatchState, rev: str, key: int | None = None
    ) -> None:
        """Takes the revision of a successful write of ``encoded`` (the ``key``-th
        document of a batch's body); the data is then clean."""
        self._data["_rev"] = rev
        self._synced_source = encoded
        self._synced_key = key
        self._synced_rev = rev

    @property
    def _fresh(self) -> bool:
        """True if the local data holds nothing but the ``_id``."""
        return len(self._data) == 1 and "_id" in self._data

    # --- requests ---

    async def fetch(
        self,
        discard_changes: bool = False,
        *,
        rev: str | None = None,
        r: int | None = None,
        attachments: bool = False,
        atts_since: list[str] | None = None,
        att_encoding_info: bool = False,
    ) -> None:
        """Replaces the local data with the server's: GET /{db}/{docid}[?rev=][&r=].

        ``r``: the copies to read on a cluster (default: the client's
        :class:`~aiocouch.cluster.Quorum`, else the database's). ``attachments=True``
        brings every attachment's bytes inline (base64, see
        ``attachment(name).inline_data``), ``atts_since`` (revisions) those written after
        them, the others staying stubs (pouchdb-server ignores it and inlines them all);
        ``att_encoding_info=True`` adds ``encoding`` and ``encoded_length`` to the stubs of
        attachments CouchDB stores compressed.
        Raises ConflictError (no request) if the local data has unsaved changes and
        ``discard_changes`` is False, TypeError (no request) for ``atts_since`` that is no
        list; NotFoundError (404); BadRequestError (bad rev).
        """
        check_quorum("r", r)
        if atts_since is not None and not isinstance(atts_since, list):
            raise TypeError(f"atts_since takes a list of revisions, not {atts_since!r}")
        if not (discard_changes or self._fresh) and self._dirty_cache:
            raise ConflictError(
                f"Cannot fetch document '{self.id}' from server, as the local cache has "
                "unsaved changes."
            )
        params = {
            **self._remote._quorum._read(r),
            "rev": rev or None,
            # (with atts_since, CouchDB implies it; pouchdb-server needs it, and then
            # sends every attachment's data)
            "attachments": attachments or atts_since is not None or None,
            "atts_since": atts_since,
            "att_encoding_info": att_encoding_info or None,
        }
        response, document = await self._get_answer(params)
        self._update_cache(document, response._body)

    async def save(self, *, w: int | None = None) -> HTTPResponse | None:
        """Saves the local data if it changed: PUT /{db}/{docid}[?w=]; otherwise sends nothing.

        Returns the HTTPResponse, or None. On a cluster its ``accepted`` is True (202) when
        fewer copies than the write quorum ``w`` confirmed the write (default: the
        client's :class:`~aiocouch.cluster.Quorum`, else the database's). Raises
        ConflictError if the server's revision differs from the local one.
        """
        check_quorum("w", w)
        change = self._encode_if_dirty()
        if change is None:
            return None
        body, encoded = change
        response, result = await self._put_encoded(body, w)
        self._saved(encoded, result["rev"])
        return response

    async def delete(self, discard_changes: bool = False, *, w: int | None = None) -> HTTPResponse:
        """Deletes the document: DELETE /{db}/{docid}?rev=<local rev>[&w=].

        ``w`` and the answer's ``accepted``: as for :meth:`save`. Afterwards the local data
        holds only ``_id``; a later :meth:`save` of new data recreates the document.
        Raises ConflictError (unsaved local changes, or a stale revision) and KeyError if
        the document was never fetched or saved.
        """
        if self._dirty_cache and not discard_changes:
            raise ConflictError(
                f"Cannot delete document '{self.id}' from server, as the local cache has "
                "unsaved changes."
            )
        check_quorum("w", w)
        response, _ = await self._delete(self._data["_rev"], w)
        self._update_cache({"_id": self._data["_id"]})
        return response

    async def copy(self, new_id: str) -> HTTPResponse:
        """Copies the server's current revision to ``new_id``: COPY /{db}/{docid}.

        Returns the HTTPResponse; its ``etag`` is the revision of the copy. ``new_id`` may
        end in ``?rev=<rev>`` to overwrite that revision of an existing document. Raises
        BadRequestError (no request) for a destination CouchDB cannot take.
        """
        response, _ = await self._copy(_paths.copy_destination(new_id))
        return response

    async def info(self) -> JsonDict:
        """The id and current revision on the server: HEAD /{db}/{docid}.

        CouchDB's ETag is the revision. A weak ETag (``W/"..."``, from servers or proxies
        that hash the body instead) is not one, so then GET /{db}/{docid} supplies it.
        Raises NotFoundError if the document does not exist.
        """
        response = await self._head()
        rev = response.etag
        if rev is None or rev.startswith("W/"):
            rev = (await self._get())["_rev"]
        return {"ok": True, "id": self._data["_id"], "rev": rev}

    async def fetch_info(self) -> JsonDict:
        """Deprecated alias of :meth:`info`."""
        warnings.warn("fetch_info() is deprecated, use info()", DeprecationWarning, stacklevel=2)
        return await self.info()

    async def conflicts(self) -> list[str]:
        """The conflicting revisions: GET /{db}/{docid}?conflicts=true."""
        conflicts: list[str] = (await self._get(conflicts=True)).get("_conflicts", [])
        return conflicts

    async def revs(self) -> list[str]:
        """Every known revision, newest first: GET /{db}/{docid}?revs_info=true."""
        return [info["rev"] for info in (await self._get(revs_info=True))["_revs_info"]]

    async def open_revs(
        self, open_revs: Sequence[str] | str = "all", **params: Any
    ) -> list[revisions.RevisionResult]:
        """The leaf revisions (``"all"``), deleted ones included, or the revisions named:
        GET /{db}/{docid}?open_revs=...&params.

        A named revision the server lacks comes back with ``error`` "not_found".
        ``params`` go as given: ``revs=True`` adds each body's ``_revisions``,
        ``latest=True`` answers a revision with the leaves that followed it. Raises
        TypeError or ValueError (no request) for ``open_revs`` that is neither "all"
        nor revisions, NotFoundError if the document never existed.
        """
        return await revisions.open_revs(self, open_revs, params)

    async def revs_info(self, rev: str | None = None) -> list[revisions.RevisionInfo]:
        """The revision ``rev`` (default: the current one) and its ancestors, newest first,
        each with whether its body is kept: GET /{db}/{docid}?revs_info=true[&rev=]."""
        return await revisions.revs_info(self, rev)

    async def revision_history(self, rev: str | None = None) -> list[str]:
        """The revision ``rev`` (default: the current one) and its ancestors, newest first
        (``["3-c", "2-b", "1-a"]``): GET /{db}/{docid}?revs=true[&rev=]."""
        return await revisions.revision_history(self, rev)

    def attachment(self, id: str) -> Attachment:
        """The attachment ``id`` of this document (no request)."""
        return Attachment(self, id)

    async def __aenter__(self) -> Document:
        """Fetches the document (GET), keeping the local data if it does not exist."""
        with contextlib.suppress(NotFoundError):
            await self.fetch(discard_changes=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Saves the document (PUT, if changed) unless the block raised."""
        if exc_type is None:
            await self.save()

    # --- local properties ---

    @property
    def rev(self) -> str | None:
        """The local revision, or None if the document was never fetched or saved."""
        rev: str | None = self._data.get("_rev")
        return rev

    @rev.setter
    def rev(self, rev: str) -> None:
        if not isinstance(rev, str):
            raise TypeError(f"A revision must be a str, not {type(rev).__name__}")
        self._data["_rev"] = rev

    @property
    def exists(self) -> bool:
        """True if the document was fetched or saved and is not deleted (no request)."""
        return "_rev" in self._data and "_deleted" not in self._data

    @property
    def data(self) -> JsonDict | None:
        """The live local data if the document exists, else None (no request)."""
        return self._data if self.exists else None

    @property
    def json(self) -> JsonDict:
        """A new dict of the fields not starting with ``_`` if it exists, else ``{}``."""
        if not self.exists:
            return {}
        return {key: value for key, value in self._data.items() if not key.startswith("_")}

    # --- the dict-like surface (all local) ---

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def update(self, data: JsonDict) -> None:
        """Updates the local data like ``dict.update``."""
        self._data.update(data)

    def items(self) -> ItemsView[str, Any]:
        """The local data's items."""
        return self._data.items()

    def keys(self) -> KeysView[str]:
        """The local data's keys."""
        return self._data.keys()

    def values(self) -> ValuesView[Any]:
        """The local data's values."""
        return self._data.values()

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` (nothing is inserted)."""
        return self._data.get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, inserting ``default`` first if it is missing."""
        return self._data.setdefault(key, default)

    def __repr__(self) -> str:
        return json.dumps(self._data, indent=2)

    __str__ = __repr__


class SecurityDocument(Document):
    """The ``_security`` object of a database: admins and members, by names and roles."""

    def __init__(self, database: Database | None, **kwargs: Any) -> None:
        super().__init__(database, "_security", **kwargs)
        del self._data["_id"]

    @property
    def endpoint(self) -> str:
        """``/{db}/_security``."""
        return f"{_paths.database_path(self._database.id)}/_security"

    # The security object has no write quorum: CouchDB writes it to every copy, and
    # answers 500 no_majority when fewer than a majority confirm it.
    async def save(self) -> None:  # type: ignore[override]
        """Saves the security object if it changed: PUT /{db}/_security.

        Raises UnauthorizedError (401) and ForbiddenError (403, or 500 from a non-admin).
        """
        change = self._encode_if_dirty()
        if change is None:
            return
        await self._database._put_security(self._data)
        self._mark_synced(change[1])

    def _section(self, section: str, kind: str) -> list[str] | None:
        entries: list[str] | None = self._data.get(section, {}).get(kind)
        return entries

    def _add(self, section: str, kind: str, entry: str) -> None:
        entries = self._data.setdefault(section, {}).setdefault(kind, [])
        if entry not in entries:
            entries.append(entry)

    def _remove(self, section: str, kind: str, entry: str) -> None:
        entries = self._section(section, kind)
        if entries is None or entry not in entries:
            # A SecurityDocument built with database=None works locally too.
            where = "" if self._database is None else f" of '{self._database.id}'"
            raise KeyError(f"'{entry}' is not in the {kind} of the {section}{where}")
        entries.remove(entry)

    @property
    def members(self) -> list[str] | None:
        """The member names, or None if none are set."""
        return self._section("members", "names")

    @property
    def member_roles(self) -> list[str] | None:
        """The member roles, or None if none are set."""
        return self._section("members", "roles")

    @property
    def admins(self) -> list[str] | None:
        """The admin names, or None if none are set."""
        return self._section("admins", "names")

    @property
    def admin_roles(self) -> list[str] | None:
        """The admin roles, or None if none are set."""
        return self._section("admins", "roles")

    def add_member(self, member: str) -> None:
        """Adds a member name (local; :meth:`save` sends it)."""
        self._add("members", "names", member)

    def add_member_role(self, role: str) -> None:
        """Adds a member role (local)."""
        self._add("members", "roles", role)

    def add_admin(self, admin: str) -> None:
        """Adds an admin name (local)."""
        self._add("admins", "names", admin)

    def add_admin_role(self, role: str) -> None:
        """Adds an admin role (local)."""
        self._add("admins", "roles", role)

    def remove_member(self, member: str) -> None:
        """Removes a member name (local); KeyError if absent."""
        self._remove("members", "names", member)

    def remove_member_role(self, role: str) -> None:
        """Removes a member role (local); KeyError if absent."""
        self._remove("members", "roles", role)

    def remove_admin(self, admin: str) -> None:
        """Removes an admin name (local); KeyError if absent."""
        self._remove("admins", "names", admin)

    def remove_admin_role(self, role: str) -> None:
        """Removes an admin role (local); KeyError if absent."""
        self._remove("admins", "roles", role)
