"""A stand-in for CouchDB's document and attachment endpoints that keeps attachments on disk.

pouchdb-server holds an attachment whole in memory (as base64) and takes minutes for a
few hundred MiB, or exits; the memory tests and the 1 GB benchmark of streamed attachments
use this server instead, in a process of its own, so that what they measure is the client.
It answers the way CouchDB 3.4.3 does (transcript sections 4 and 9), for this much only:

- ``PUT /{db}/{docid}`` (JSON) creates or updates a document: 201 ``{"ok", "id", "rev"}``;
- ``GET /{db}/{docid}``: the document with its ``_attachments`` stubs;
- ``PUT /{db}/{docid}/{name}?rev=`` with a ``Content-Length`` or chunked body: the body
  goes to a file as it arrives (MD5 computed on the way), 201; a stale rev 409;
- ``GET`` / ``HEAD /{db}/{docid}/{name}``: the file with ``Content-Length``, ``ETag`` (the
  MD5) and ``Accept-Ranges: bytes``; ``Range: bytes=a-b`` gets 206 with
  ``Content-Range``, a range past the end 416; a missing one 404.

Databases need no creation. Only the standard library is used.
Run ``python -m testserver.attachment_server``: it prints its URL and serves until killed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

__all__ = ["AttachmentServer", "main"]

_PIECE = 1 << 20
_RANGE = re.compile(r"bytes=(\d+)-(\d*)\Z")


@dataclass
class _Stored:
    path: str
    length: int
    digest: str
    content_type: str
    revpos: int


@dataclass
class _Document:
    generation: int
    body: dict[str, object]
    attachments: dict[str, _Stored] = field(default_factory=dict)

    @property
    def rev(self) -> str:
        return f"{self.generation}-{uuid.uuid5(uuid.NAMESPACE_OID, str(self.generation)).hex}"


class AttachmentServer:
    """Serves on 127.0.0.1 (a free port); attachments are files in ``directory``."""

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._documents: dict[tuple[str, str], _Document] = {}
        self.url = ""

    async def start(self) -> asyncio.AbstractServer:
        """Starts listening; :attr:`url` then holds the server's URL."""
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                await self._answer(method, target, headers, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        url = urlsplit(target)
        parts = [unquote(part) for part in url.path.split("/")[1:]]
        if parts[1:2] in (["_design"],) and len(parts) > 2:
            parts[1:3] = [f"_design/{parts[2]}"]
        query = dict(pair.partition("=")[::2] for pair in url.query.split("&") if pair)
        if len(parts) == 2:
            body = await _read_body(reader, headers, None)
            await self._document(method, (parts[0], parts[1]), body, writer)
        elif len(parts) == 3:
            await self._attachment(
                method, (parts[0], parts[1]), parts[2], query, headers, reader, writer
            )
        else:
            await _send_json(writer, 404, {"error": "not_found", "reason": "missing"})

    async def _document(
        self, method: str, key: tuple[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> None:
        document = self._documents.get(key)
        if method == "GET":
            if document is None:
                await _send_json(writer, 404, {"error": "not_found", "reason": "missing"})
                return
            stubs = {
                name: {
                    "content_type": stored.content_type,
                    "revpos": stored.revpos,
                    "digest": "md5-" + stored.digest,
                    "length": stored.length,
                    "stub": True,
                }
                for name, stored in document.attachments.items()
            }
            answer = {**document.body, "_id": key[1], "_rev": document.rev}
            if stubs:
                answer["_attachments"] = stubs
            await _send_json(writer, 200, answer)
        elif method == "PUT":
            data = json.loads(body)
            if document is not None and data.get("_rev") != document.rev:
                await _send_json(
                    writer, 409, {"error": "conflict", "reason": "Document update conflict."}
                )
                return
            fields = {k: v for k, v in data.items() if k not in ("_id", "_rev", "_attachments")}
            if document is None:
                document = self._documents[key] = _Document(1, fields)
            else:
                document.generation += 1
                document.body = fields
            await _send_json(writer, 201, {"ok": True, "id": key[1], "rev": document.rev})
        else:
            await _send_json(writer, 405, {"error": "method_not_allowed", "reason": method})

    async def _attachment(
        self,
        method: str,
        key: tuple[str, str],
        name: str,
        query: dict[str, str],
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        document = self._documents.get(key)
        if method == "PUT":
            rev = unquote(query.get("rev", ""))
            stale = (document.rev if document is not None else "") != rev
            path = os.path.join(self._directory, uuid.uuid4().hex)
            digest = hashlib.md5(usedforsecurity=False)
            length = 0
            with open(path, "wb") as file:

                def write(piece: bytes) -> None:
                    nonlocal length
                    digest.update(piece)
                    length += len(piece)
                    file.write(piece)

                await _read_body(reader, headers, write)
            if stale:
                os.unlink(path)
                await _send_json(
                    writer, 409, {"error": "conflict", "reason": "Document update conflict."}
                )
                return
            if document is None:
                document = self._documents[key] = _Document(1, {})
            else:
                document.generation += 1
            old = document.attachments.get(name)
            if old is not None:
                os.unlink(old.path)
            document.attachments[name] = _Stored(
                path,
                length,
                base64.b64encode(digest.digest()).decode(),
                headers.get("content-type", "application/octet-stream"),
                document.generation,
            )
            await _send_json(writer, 201, {"ok": True, "id": key[1], "rev": document.rev})
            return
        stored = None if document is None else document.attachments.get(name)
        if method not in ("GET", "HEAD") or stored is None:
            await _read_body(reader, headers, None)
            await _send_json(
                writer, 404, {"error": "not_found", "reason": "Document is missing attachment"}
            )
            return
        first, last, status = 0, stored.length - 1, 200
        head = [
            f"Content-Type: {stored.content_type}",
            f'ETag: "{stored.digest}"',
            "Accept-Ranges: bytes",
        ]
        asked = _RANGE.match(headers.get("range", ""))
        if asked is not None:
            first = int(asked[1])
            if asked[2]:
                last = min(int(asked[2]), stored.length - 1)
            if first >= stored.length or last < first:
                reason = "Requested range not satisfiable"
                await _send_json(
                    writer, 416, {"error": "requested_range_not_satisfiable", "reason": reason}
                )
                return
            status = 206
            head.append(f"Content-Range: bytes {first}-{last}/{stored.length}")
        length = last - first + 1
        head.append(f"Content-Length: {length}")
        phrase = "Partial Content" if status == 206 else "OK"
        writer.write(("\r\n".join([f"HTTP/1.1 {status} {phrase}", *head]) + "\r\n\r\n").encode())
        if method == "GET":
            with open(stored.path, "rb") as source:
                source.seek(first)
                while length > 0:
                    piece = source.read(min(_PIECE, length))
                    length -= len(piece)
                    writer.write(piece)
                    await writer.drain()
        await writer.drain()


async def _read_body(
    reader: asyncio.StreamReader,
    headers: dict[str, str],
    sink: Callable[[bytes], None] | None,
) -> bytes:
    """The request body (``Content-Length`` or chunked); with a ``sink``, each piece goes
    to it as it arrives and nothing is kept."""
    pieces: list[bytes] = []
    take = pieces.append if sink is None else sink

    async def take_exactly(size: int) -> None:
        while size:
            piece = await reader.read(min(size, _PIECE))
            if not piece:
                raise asyncio.IncompleteReadError(b"", size)
            size -= len(piece)
            take(piece)

    if headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readline()).split(b";")[0].strip(), 16):
            await take_exactly(size)
            await reader.readexactly(2)
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # the trailer section
    else:
        await take_exactly(int(headers.get("content-length") or 0))
    return b"".join(pieces)


async def _send_json(writer: asyncio.StreamWriter, status: int, body: object) -> None:
    data = json.dumps(body).encode()
    writer.write(
        f"HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    await writer.drain()


def main() -> None:
    """Serves until killed; prints the URL first."""

    async def serve() -> None:
        with tempfile.TemporaryDirectory(prefix="aiocouch-attachments-") as directory:
            server = AttachmentServer(directory)
            async with await server.start():
                print(server.url, flush=True)
                await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
