"""A loopback proxy that lets couchbackup/couchrestore run against pouchdb-server 4.2.0.

pouchdb-server answers some of the tools' requests unlike CouchDB 3.4.3, and the tools
then stop, loop or lose data. This proxy fixes exactly those answers (found with a
logging proxy; CouchDB's side from its transcript and its source) and passes every other
byte through unchanged:

- ``POST /_session`` with ``{"username": ..., "password": ...}``: the login of couchbackup
  (IBM's Cloudant SDK under it) names the user ``username``. CouchDB takes ``name`` or
  ``username``; pouchdb-server only ``name`` (401 "Name or password is incorrect"). The
  field is renamed (the body is JSON, perhaps gzip-compressed).
- The ``AuthSession`` cookie: CouchDB's has ``Max-Age=600``, pouchdb-server's none, so the
  SDK takes it for expired and logs in again before (nearly) every request. ``Max-Age=600``
  is added.
- ``POST /{db}/_bulk_get`` with ``{"docs": []}``: couchbackup's probe that the endpoint
  exists. CouchDB answers ``{"results":[]}``; pouchdb-server never answers, and the tool
  waits for ever. The proxy answers it as CouchDB does.
- ``_changes``: CouchDB's answer says how many changes follow (``pending``);
  pouchdb-server's does not, and couchbackup asks for the next (empty) page for ever.
  ``pending`` is added (0 after a page that is not full).
- ``GET /{db}``: pouchdb-server gives no ``doc_del_count``, and couchrestore refuses the
  new target as not empty. 0 is added where it is certain: nothing was ever written.
- ``POST /{db}/_bulk_get`` of a document by id alone: CouchDB returns every leaf revision
  (``open_revs=all``: conflicts and deleted leaves too); pouchdb-server the winner only,
  ``{}`` when it is deleted. The proxy asks for each leaf and regroups the answer per
  entry as CouchDB gives it. It learns the leaves beside each of the tool's ``_changes``
  pages (the same page again with ``style=all_docs``), or, for a document not seen
  there, from ``POST /{db}/_changes?filter=_doc_ids&style=all_docs`` (a filter
  pouchdb-server survives, but it reads the whole feed).

Requests are handled one at a time per connection (HTTP/1.1 without pipelining, as
Node's agent sends them): a request is read whole, an answer it need not change is
streamed through as it comes. The proxy runs its own event loop in a thread of the
benchmark's orchestrator, so its CPU time is not counted as the tool's (it is the
machine's, and its copying is in the wall time)::

    with CompatProxy("127.0.0.1", 5984) as proxy:
        ...  # couchbackup --url http://user:password@127.0.0.1:{proxy.port}
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import urllib.parse
from typing import Any

from loopback_proxy import LoopbackProxy

#: Bytes copied at once.
CHUNK = 256 * 1024

#: CouchDB's default session length (``[chttpd_auth] timeout``), the Max-Age of its cookie.
SESSION_SECONDS = 600

_BULK_GET_PROBE_ANSWER = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Cache-Control: must-revalidate\r\n"
    b"Content-Length: 15\r\n"
    b"\r\n"
    b'{"results":[]}\n'
)


class _Request:
    """One request as read from the client: its head and its (de-chunked) body."""

    def __init__(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes):
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def query(self, name: str) -> str | None:
        query = self.target.split("?", 1)[1] if "?" in self.target else ""
        return dict(urllib.parse.parse_qsl(query)).get(name)

    def without_header(self, name: str) -> _Request:
        headers = [(key, value) for key, value in self.headers if key.lower() != name]
        return _Request(self.method, self.target, headers, self.body)

    def header(self, name: str) -> str:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), "")

    def json_body(self) -> object:
        """The body as JSON (gunzipped if it says so), or None if it is not JSON."""
        body = self.body
        with contextlib.suppress(OSError, ValueError):
            if self.header("content-encoding").lower() == "gzip":
                body = gzip.decompress(body)
            return json.loads(body)
        return None

    def with_json_body(self, value: object) -> _Request:
        """This request with another JSON body, sent uncompressed."""
        headers = [
            (key, item)
            for key, item in self.headers
            if key.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return _Request(self.method, self.target, headers, json.dumps(value).encode())

    def encoded(self) -> bytes:
        head = [f"{self.method} {self.target} HTTP/1.1"]
        head += [
            f"{key}: {value}"
            for key, value in self.headers
            if key.lower() not in ("content-length", "transfer-encoding")
        ]
        if self.body or self.method in ("POST", "PUT"):
            head.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


def translated(request: _Request) -> _Request | bytes:
    """What to send the server instead of ``request``, or the answer to give the client
    without asking the server."""
    path = request.path
    if request.method == "POST" and path == "/_session":
        login = request.json_body()
        if isinstance(login, dict) and "username" in login and "name" not in login:
            login["name"] = login.pop("username")
            return request.with_json_body(login)
    elif request.method == "POST" and path.endswith("/_bulk_get"):
        if request.json_body() == {"docs": []}:
            return _BULK_GET_PROBE_ANSWER
        return request.without_header("accept-encoding")  # an identity answer, regrouped
    elif path.endswith("/_changes") or _is_database_info(request):
        # an identity answer, to add a field to it
        return request.without_header("accept-encoding")
    return request


Leaves = dict[tuple[str, str], list[str]]
"""The leaf revisions of documents, by database path and document id."""


def remember_leaves(leaves: Leaves, database: str, changes: Any) -> None:
    """Notes the leaves of each document in a ``style=all_docs`` changes answer."""
    for row in changes.get("results", ()):
        leaves[database, row["id"]] = [change["rev"] for change in row["changes"]]


def leaf_requests(docs: list[Any], leaves: dict[str, list[str]]) -> tuple[list[Any], list[int]]:
    """``_bulk_get``'s ``docs`` with each entry that names no ``rev`` replaced by one entry
    per leaf revision of its document (``leaves``: id -> revs), as CouchDB reads such an
    entry (``open_revs=all``: every leaf, deleted ones too); and how many entries stand
    for each original one."""
    expanded: list[Any] = []
    counts: list[int] = []
    for entry in docs:
        revs = leaves.get(str(entry.get("id"))) if isinstance(entry, dict) else None
        if isinstance(entry, dict) and "rev" not in entry and revs:
            expanded += [{**entry, "rev": rev} for rev in revs]
            counts.append(len(revs))
        else:
            expanded.append(entry)
            counts.append(1)
    return expanded, counts


def regrouped(results: list[Any], counts: list[int]) -> list[Any]:
    """The results of the expanded request as CouchDB gives them for the original one:
    one result per original entry, holding the documents of all its leaves."""
    grouped = []
    position = 0
    for count in counts:
        part = results[position : position + count]
        position += count
        docs = [doc for result in part for doc in result.get("docs", [])]
        grouped.append({**part[0], "docs": docs})
    return grouped


def _is_database_info(request: _Request) -> bool:
    return (
        request.method == "GET"
        and request.path.count("/") == 1
        and not request.path.startswith("/_")
        and len(request.path) > 1
    )


def with_deleted_count(info: object) -> object:
    """A database's info with CouchDB's ``doc_del_count`` where it is sure to be 0: the
    database has never been written to (update_seq 0). couchrestore requires a new, empty
    target and checks both counts; pouchdb-server gives no ``doc_del_count``."""
    if isinstance(info, dict) and "doc_del_count" not in info and info.get("update_seq") == 0:
        return {**info, "doc_del_count": 0}
    return info


def with_session_expiry(head: list[str]) -> list[str]:
    """The head of an answer with CouchDB's ``Max-Age`` on an AuthSession cookie that has
    none (pouchdb-server's is a browser-session cookie, so the tool takes it for expired
    and logs in again before every request)."""
    return [
        line + "; Max-Age=" + str(SESSION_SECONDS)
        if line.lower().startswith("set-cookie: authsession=") and "max-age" not in line.lower()
        else line
        for line in head
    ]


def with_pending(changes: object, limit: int | None, update_seq: object) -> object:
    """A ``_changes`` answer with CouchDB's ``pending``: how many changes follow
    ``last_seq`` (0 when the page was not full; else the database's update_seq minus
    last_seq, both integers on pouchdb-server: at least 1 if any change follows)."""
    if not isinstance(changes, dict) or "pending" in changes or "results" not in changes:
        return changes
    last_seq = changes.get("last_seq")
    pending = 0
    full = limit is not None and len(changes["results"]) >= limit
    if full and isinstance(update_seq, int) and isinstance(last_seq, int):
        pending = max(0, update_seq - last_seq)
    return {**changes, "pending": pending}


class CompatProxy(LoopbackProxy):
    """Forwards loopback connections to ``host:port``, translating as the module says."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self._leaves: Leaves = {}

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        """One client connection and its own connection to the server, request by request."""
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            while (request := await _read_request(client_reader)) is not None:
                forwarded = translated(request)
                if isinstance(forwarded, bytes):
                    client_writer.write(forwarded)
                elif forwarded.path.endswith("/_changes"):
                    answer = await _changes(
                        forwarded, upstream_reader, upstream_writer, self._leaves
                    )
                    client_writer.write(answer)
                elif forwarded.method == "POST" and forwarded.path.endswith("/_bulk_get"):
                    answer = await _bulk_get(
                        forwarded, upstream_reader, upstream_writer, self._leaves
                    )
                    client_writer.write(answer)
                elif _is_database_info(forwarded):
                    upstream_writer.write(forwarded.encoded())
                    _, head, body = await _read_response(upstream_reader)
                    info = with_deleted_count(json.loads(body))
                    client_writer.write(_encoded_response(head, json.dumps(info).encode()))
                else:
                    upstream_writer.write(forwarded.encoded())
                    await _relay_response(upstream_reader, client_writer, request.method)
                await client_writer.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass  # either side went away or broke the protocol: end both
        finally:
            client_writer.close()
            if upstream_writer is not None:
                upstream_writer.close()


async def _read_head(reader: asyncio.StreamReader) -> list[str] | None:
    """The lines of a message head, or None at a clean end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise
        return None
    return head.decode("latin-1").split("\r\n")[:-2]


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    pairs = [line.split(":", 1) for line in lines]
    return [(key.strip(), value.strip()) for key, value in pairs]


def _value(headers: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in headers if key.lower() == name), "")


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    lines = await _read_head(reader)
    if lines is None:
        return None
    method, target, _ = lines[0].split(" ", 2)
    headers = _headers(lines[1:])
    if _value(headers, "transfer-encoding").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(_value(headers, "content-length") or 0))
    return _Request(method, target, headers, body)


async def _relay_response(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str
) -> None:
    """Copies one answer from the server to the client as it comes."""
    lines = await _read_head(reader)
    if lines is None:
        raise ConnectionResetError("the server closed the connection")
    writer.write(("\r\n".join(with_session_expiry(lines)) + "\r\n\r\n").encode("latin-1"))
    status = int(lines[0].split(" ", 2)[1])
    headers = _headers(lines[1:])
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return
    if _value(headers, "transfer-encoding").lower() == "chunked":
        while True:
            size_line = await reader.readuntil(b"\r\n")
            writer.write(size_line)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    writer.write(trailer)
                writer.write(b"\r\n")
                return
            await _copy(reader, writer, size + 2)
    elif length := _value(headers, "content-length"):
        await _copy(reader, writer, int(length))
    else:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        raise ConnectionResetError("the answer ended with the connection")


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, size: int) -> None:
    while size > 0:
        data = await reader.read(min(size, CHUNK))
        if not data:
            raise asyncio.IncompleteReadError(b"", size)
        writer.write(data)
        await writer.drain()
        size -= len(data)


async def _changes(
    request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, leaves: Leaves
) -> bytes:
    """The answer to a ``_changes`` request, whole, with ``pending`` added (GET /{db} on
    the same connection for its update_seq when the page is full). The leaves of the
    documents in it go into ``leaves``: the same page again with ``style=all_docs``."""
    writer.write(request.encoded())
    status, head, body = await _read_response(reader)
    if status != 200:
        return _encoded_response(head, body)
    changes = json.loads(body)
    limit = request.query("limit")
    update_seq = None
    database = request.path.rsplit("/", 1)[0]
    headers = [*_credentials(request), ("Accept", "application/json")]
    if changes.get("results") and request.query("style") != "all_docs":
        page = {"style": "all_docs", "since": request.query("since") or "0"}
        if limit is not None:
            page["limit"] = limit
        query = urllib.parse.urlencode(page)
        writer.write(_Request("GET", f"{request.path}?{query}", headers, b"").encoded())
        page_status, _, all_docs = await _read_response(reader)
        if page_status == 200:
            remember_leaves(leaves, database, json.loads(all_docs))
    if limit is not None and len(changes.get("results", ())) >= int(limit):
        writer.write(_Request("GET", database, headers, b"").encoded())
        info_status, _, info = await _read_response(reader)
        if info_status == 200:
            update_seq = json.loads(info).get("update_seq")
    fixed = with_pending(changes, None if limit is None else int(limit), update_seq)
    return _encoded_response(head, json.dumps(fixed).encode())


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, list[str], bytes]:
    """A whole answer (not to a HEAD): its status, head lines and (de-chunked) body."""
    lines = await _read_head(reader)
    if lines is None:
        raise ConnectionResetError("the server closed the connection")
    status = int(lines[0].split(" ", 2)[1])
    headers = _headers(lines[1:])
    if _value(headers, "transfer-encoding").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(_value(headers, "content-length") or 0))
    return status, lines, body


def _encoded_response(head: list[str], body: bytes) -> bytes:
    dropped = ("content-length", "transfer-encoding", "etag")
    lines = [head[0]] + [
        line for line in head[1:] if line.split(":", 1)[0].strip().lower() not in dropped
    ]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(with_session_expiry(lines)) + "\r\n\r\n").encode("latin-1") + body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    pieces = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        pieces.append(await reader.readexactly(size))
        await reader.readexactly(2)
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass  # trailers
    return b"".join(pieces)


async def _bulk_get(
    request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, leaves: Leaves
) -> bytes:
    """The answer to ``_bulk_get``, with every leaf revision of the documents asked for by
    id alone: their leaves from ``leaves`` (else POST /{db}/_changes?filter=_doc_ids&
    style=all_docs, which reads the whole feed), then ``_bulk_get`` of each leaf,
    regrouped per entry."""
    body = request.json_body()
    docs = body.get("docs") if isinstance(body, dict) else None
    by_id = [e["id"] for e in docs or () if isinstance(e, dict) and "rev" not in e and "id" in e]
    if not isinstance(body, dict) or not isinstance(docs, list) or not by_id:
        writer.write(request.encoded())
        return _encoded_response(*(await _read_response(reader))[1:])
    database = request.path.rsplit("/", 1)[0]
    unknown = [id for id in by_id if (database, id) not in leaves]
    if unknown:
        changes = _Request(
            "POST",
            f"{database}/_changes?filter=_doc_ids&style=all_docs",
            [
                *_credentials(request),
                ("Accept", "application/json"),
                ("Content-Type", "application/json"),
            ],
            json.dumps({"doc_ids": unknown}).encode(),
        )
        writer.write(changes.encoded())
        status, head, found = await _read_response(reader)
        if status != 200:
            return _encoded_response(head, found)
        remember_leaves(leaves, database, json.loads(found))
    known = {id: leaves[database, id] for id in by_id if (database, id) in leaves}
    expanded, counts = leaf_requests(docs, known)
    writer.write(request.with_json_body({**body, "docs": expanded}).encoded())
    status, head, answer = await _read_response(reader)
    if status != 200:
        return _encoded_response(head, answer)
    results = regrouped(json.loads(answer)["results"], counts)
    return _encoded_response(head, json.dumps({"results": results}).encode())


def _credentials(request: _Request) -> list[tuple[str, str]]:
    kept = ("authorization", "cookie", "host")
    return [(key, value) for key, value in request.headers if key.lower() in kept]
