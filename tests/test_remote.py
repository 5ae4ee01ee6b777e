"""Transport (API.md sections 1 and 3): HTTPResponse, RemoteServer helpers, URLs, queries."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from aiocouch import CouchDB, Database, Document, HTTPResponse, NotFoundError
from aiocouch.cluster import Quorum
from aiocouch.remote import RemoteServer, _quote_id, _stringify_params
from testserver.request_counter import RequestCounter

# --- helpers ---


def query_of(raw_path_qs: str) -> list[tuple[str, str]]:
    """The decoded (name, value) pairs of a recorded path with query."""
    return parse_qsl(urlsplit(raw_path_qs).query, keep_blank_values=True)


def last_query(counter: RequestCounter) -> dict[str, str]:
    return dict(query_of(counter.requests[-1][1]))


class HeaderRecorder:
    """A trace config that records the headers of every request a session sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, CIMultiDict[str]]] = []
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._on_request_start)
        self.trace_configs = [config]

    async def _on_request_start(
        self, session: Any, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        self.sent.append((params.method, params.url.raw_path_qs, CIMultiDict(params.headers)))


class PrefixProxy:
    """A reverse proxy on http://127.0.0.1:<port>/couch/ in front of the test server.

    It records the raw path (with query) of every request it receives and forwards it
    unchanged, without the ``/couch`` prefix.
    """

    prefix = "/couch"

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.received: list[tuple[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{self.prefix}"
        self._session = aiohttp.ClientSession(auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        raw = request.raw_path
        self.received.append((request.method, raw))
        if not raw.startswith(self.prefix + "/") and raw != self.prefix:
            return web.json_response({"error": "proxy", "reason": raw}, status=502)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._session.request(
            request.method,
            URL(self.target + raw[len(self.prefix) :], encoded=True),
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            response = web.Response(body=body, status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    response.headers[name] = value
            return response


@pytest.fixture
async def prefix_proxy(server_url: str) -> AsyncIterator[PrefixProxy]:
    proxy = PrefixProxy(server_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def credentials_shown(text: str, user: str, password: str) -> bool:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"{user}:{password}" in text or token in text or f":{password}@" in text


# --- HTTPResponse ---


def raw_response(status: int, headers: Any) -> SimpleNamespace:
    return SimpleNamespace(status=status, headers=headers)


@pytest.mark.parametrize(
    "headers",
    [
        CIMultiDictProxy(CIMultiDict({"ETag": '"1-abc"', "Location": "/db/doc"})),
        CIMultiDictProxy(CIMultiDict({"Etag": '"1-abc"', "Location": "/db/doc"})),
        {"ETag": '"1-abc"', "Location": "/db/doc"},
        {"Etag": '"1-abc"', "Location": "/db/doc"},
    ],
    ids=["multidict-ETag", "multidict-Etag", "dict-ETag", "dict-Etag"],
)
def test_http_response_headers_are_case_insensitive(headers: Any) -> None:
    response = HTTPResponse(raw_response(201, headers))
    assert response.status == 201
    assert isinstance(response.headers, dict)
    assert response.headers["Etag"] == '"1-abc"'
    assert response.headers["ETag"] == '"1-abc"'
    assert response.headers["etag"] == '"1-abc"'
    assert "Etag" in response.headers
    assert "ETag" in response.headers
    assert "Location" in response.headers
    assert "location" in response.headers
    assert "X-Missing" not in response.headers
    assert response.headers.get("ETAG") == '"1-abc"'
    assert response.headers.get("X-Missing", "default") == "default"
    assert response.etag == "1-abc"


def test_http_response_without_etag() -> None:
    response = HTTPResponse(raw_response(200, CIMultiDictProxy(CIMultiDict({"Server": "x"}))))
    assert response.etag is None
    assert "Etag" not in response.headers
    with pytest.raises(KeyError):
        response.headers["ETag"]


async def test_saved_document_response_has_status_and_headers(database: Database) -> None:
    doc = Document(database, "doc")
    doc["v"] = 1
    response = await doc.save()
    assert isinstance(response, HTTPResponse)
    assert response.status in (201, 202)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["content-type"] == response.headers["CONTENT-TYPE"]


@pytest.mark.couchdb_only("pouchdb-server's document ETag is a body hash, not the rev (DIFF 3)")
async def test_etag_of_a_document_is_its_revision(couchdb: CouchDB, database: Database) -> None:
    doc = Document(database, "doc")
    doc["v"] = 1
    saved = await doc.save()
    assert saved is not None
    assert saved.etag == doc.rev
    response, body = await couchdb._server._get(f"/{database.id}/doc")
    assert response.etag == body["_rev"] == doc.rev
    assert response.headers["ETag"] == f'"{doc.rev}"'
    assert response.headers["Etag"] == f'"{doc.rev}"'


# --- the private request helpers ---


async def test_get_session_returns_response_and_dict(couchdb: CouchDB, admin_user: str) -> None:
    result = await couchdb._server._get("/_session")
    assert isinstance(result, tuple)
    assert len(result) == 2
    response, session = result
    assert isinstance(response, HTTPResponse)
    assert response.status == 200
    assert isinstance(session, dict)
    assert session["userCtx"]["name"] == admin_user
    assert "_admin" in session["userCtx"]["roles"]


async def test_get_bytes_returns_the_raw_body(couchdb: CouchDB) -> None:
    response, body = await couchdb._server._get_bytes("/")
    assert response.status == 200
    assert isinstance(body, bytes)
    welcome = json.loads(body)
    assert "couchdb" in welcome or "express-pouchdb" in welcome


async def test_put_get_head_post_delete_round_trip(couchdb: CouchDB, database: Database) -> None:
    server = couchdb._server
    path = f"/{database.id}/helper-doc"

    response, created = await server._put(path, data={"value": 1})
    assert response.status in (201, 202)
    assert created["ok"] is True
    assert created["id"] == "helper-doc"
    rev = created["rev"]

    response, fetched = await server._get(path)
    assert response.status == 200
    assert fetched == {"_id": "helper-doc", "_rev": rev, "value": 1}

    response, head_body = await server._head(path)
    assert isinstance(response, HTTPResponse)
    assert response.status == 200
    assert not head_body

    response, listed = await server._post(
        f"/{database.id}/_all_docs", data={"keys": ["helper-doc"]}
    )
    assert response.status == 200
    assert [row["id"] for row in listed["rows"]] == ["helper-doc"]

    response, deleted = await server._delete(path, params={"rev": rev})
    assert response.status in (200, 202)
    assert deleted["ok"] is True

    with pytest.raises(NotFoundError):
        await server._get(path)
    with pytest.raises(NotFoundError):
        await server._head(path)


async def test_put_bytes_and_get_bytes_of_an_attachment(
    couchdb: CouchDB, database: Database
) -> None:
    server = couchdb._server
    _, created = await server._put(f"/{database.id}/with-att", data={})
    payload = bytes(range(256)) * 4
    response, result = await server._put_bytes(
        f"/{database.id}/with-att/blob.bin",
        payload,
        "application/octet-stream",
        params={"rev": created["rev"]},
    )
    assert response.status in (201, 202)
    assert result["ok"] is True
    response, body = await server._get_bytes(f"/{database.id}/with-att/blob.bin")
    assert body == payload
    assert response.headers["Content-Type"] == "application/octet-stream"


async def test_request_with_return_json_false(couchdb: CouchDB) -> None:
    response, body = await couchdb._server._request("GET", "/_session", return_json=False)
    assert response.status == 200
    assert isinstance(body, bytes)
    assert "userCtx" in json.loads(body)


# --- headers ---


async def test_every_request_sends_accept_application_json(
    server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    recorder = HeaderRecorder()
    async with CouchDB(
        server_url,
        user=admin_user,
        password=admin_password,
        trace_configs=recorder.trace_configs,
    ) as client:
        db = Database(client, database.id)
        doc = Document(db, "accept")
        doc["v"] = 1
        await doc.save()
        await db.get("accept")
        await doc.info()
        await doc.attachment("a.txt").save(b"hello", "text/plain")
        await doc.attachment("a.txt").fetch()
        [d async for d in db.docs()]
        [event async for event in db.changes()]
        feed = db.changes(feed="continuous")
        async for _ in feed:
            break
        await feed.aclose()
        async with db.create_docs(["x", "y"]):
            pass
        await client._server._get_bytes("/")
        await client._server._head(f"/{database.id}")
        await client.keys()
    assert len(recorder.sent) >= 12
    for method, path, headers in recorder.sent:
        assert headers.getall("Accept") == ["application/json"], (method, path)


async def test_continuous_feed_asks_for_an_uncompressed_body(
    server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    # a compressing server (pouchdb-server) buffers a gzipped feed: lines would arrive late
    recorder = HeaderRecorder()
    async with CouchDB(
        server_url,
        user=admin_user,
        password=admin_password,
        trace_configs=recorder.trace_configs,
    ) as client:
        db = Database(client, database.id)
        await Document(db, "a").save()
        feed = db.changes(feed="continuous")
        async for event in feed:
            assert event.id == "a"
            break
        await feed.aclose()
    method, path, headers = recorder.sent[-1]
    assert (method, urlsplit(path).path) == ("GET", f"/{database.id}/_changes")
    assert headers["Accept-Encoding"] == "identity"


async def test_server_answers_json_because_accept_is_sent(couchdb: CouchDB) -> None:
    # pouchdb-server answers text/plain unless the client asks for JSON (DIFF 4)
    response, _ = await couchdb._server._get("/")
    assert response.headers["Content-Type"].startswith("application/json")


# --- query parameters ---


async def test_string_parameter_is_sent_verbatim(
    couchdb: CouchDB, database: Database, request_counter: RequestCounter
) -> None:
    for doc_id in ("a", "baz", "c"):
        await Document(database, doc_id).save()  # with the client's w: _all_docs sees it
    request_counter.reset()
    _, result = await couchdb._server._get(f"/{database.id}/_all_docs", params={"key": '"baz"'})
    assert [row["id"] for row in result["rows"]] == ["baz"]
    assert last_query(request_counter) == {"key": '"baz"'}


async def test_booleans_none_and_ints_in_the_query(
    couchdb: CouchDB, database: Database, request_counter: RequestCounter
) -> None:
    for doc_id in ("a", "b", "c"):
        await Document(database, doc_id, data={"n": doc_id}).save()
    request_counter.reset()
    _, result = await couchdb._server._get(
        f"/{database.id}/_all_docs",
        params={"include_docs": True, "descending": False, "limit": 2, "skip": None},
    )
    assert [row["doc"]["n"] for row in result["rows"]] == ["a", "b"]
    query = query_of(request_counter.requests[-1][1])
    assert query == [("include_docs", "true"), ("descending", "false"), ("limit", "2")]


async def test_lists_and_dicts_are_sent_as_json(
    couchdb: CouchDB, database: Database, request_counter: RequestCounter
) -> None:
    for doc_id in ("a", "b", "c"):
        await Document(database, doc_id).save()
    request_counter.reset()
    _, result = await couchdb._server._get(f"/{database.id}/_all_docs", params={"keys": ["c", "a"]})
    assert [row["id"] for row in result["rows"]] == ["c", "a"]
    assert json.loads(last_query(request_counter)["keys"]) == ["c", "a"]

    await couchdb._server._get(f"/{database.id}/_all_docs", params={"startkey": {"x": 1}})
    assert json.loads(last_query(request_counter)["startkey"]) == {"x": 1}


async def test_reserved_characters_in_query_values_are_encoded(
    couchdb: CouchDB, database: Database, request_counter: RequestCounter
) -> None:
    doc_id = "a&b=c+d #e%f"
    await Document(database, doc_id).save()
    request_counter.reset()
    _, result = await couchdb._server._get(
        f"/{database.id}/_all_docs", params={"key": json.dumps(doc_id)}
    )
    assert [row["id"] for row in result["rows"]] == [doc_id]
    assert last_query(request_counter) == {"key": json.dumps(doc_id)}


def test_stringify_params_helper() -> None:
    assert _stringify_params(None) is None
    assert _stringify_params({}) == {}
    params = {"a": None, "b": True, "c": False, "d": 16, "e": '"x"', "f": ["y"]}
    assert _stringify_params(params) == {"b": "true", "c": "false", "d": 16, "e": '"x"', "f": ["y"]}
    assert params["b"] is True  # a new dict; the caller's is untouched


@pytest.mark.parametrize(
    ("segment", "quoted"),
    [
        ("a/b", "a%2Fb"),
        ("_design/x", "_design%2Fx"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("100%", "100%25"),
        ("a?b", "a%3Fb"),
        ("a#b", "a%23b"),
        ("a b", "a%20b"),
        ("é", "%C3%A9"),
        ("plain-id_1", "plain-id_1"),
    ],
)
def test_quote_id_helper(segment: str, quoted: str) -> None:
    assert _quote_id(segment) == quoted


# --- server URLs ---


async def test_server_url_with_a_path_prefix(
    prefix_proxy: PrefixProxy,
    admin_user: str,
    admin_password: str,
    database: Database,
    quorum: Quorum | None,
) -> None:
    user, password = admin_user, admin_password
    async with CouchDB(prefix_proxy.url, user, password, quorum=quorum) as client:
        await client.check_credentials()
        assert database.id in await client.keys()
        db = await client[database.id]
        doc = Document(db, "a/b")
        doc["v"] = 1
        await doc.save()
        assert (await db.get("a/b"))["v"] == 1
        assert [d.id async for d in db.docs()] == ["a/b"]
        assert [event.id async for event in db.changes()] == ["a/b"]
    paths = [path for _, path in prefix_proxy.received]
    assert all(path.startswith("/couch/") for path in paths), paths
    assert ("PUT", f"/couch/{database.id}/a%2Fb") in prefix_proxy.received


async def test_server_url_with_a_path_prefix_and_trailing_slash(
    prefix_proxy: PrefixProxy, admin_user: str, admin_password: str, database: Database
) -> None:
    async with CouchDB(prefix_proxy.url + "/", user=admin_user, password=admin_password) as c:
        await c[database.id]
    assert prefix_proxy.received == [("HEAD", f"/couch/{database.id}")]


async def test_credentials_in_the_url(
    server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    url = URL(server_url).with_user(admin_user).with_password(admin_password)
    async with CouchDB(str(url)) as client:
        _, session = await client._server._get("/_session")
        assert session["userCtx"]["name"] == admin_user
        await client.check_credentials()
        db = await client[database.id]
        await Document(db, "via-url-credentials").save()

        for text in (repr(client), str(client), repr(client._server), str(client._server)):
            assert not credentials_shown(text, admin_user, admin_password), text

        with pytest.raises(NotFoundError) as caught:
            await db.get("missing")
        for exc in (caught.value, caught.value.__cause__, caught.value.__context__):
            if exc is not None:
                for text in (str(exc), repr(exc), repr(exc.args)):
                    assert not credentials_shown(text, admin_user, admin_password), text


def test_remote_server_repr_hides_credentials(admin_user: str, admin_password: str) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    server = RemoteServer("http://someone:" + secret + "@127.0.0.1:1/couch", user="u", password="p")
    assert secret not in repr(server)
    client = CouchDB("http://127.0.0.1:1", user="someone", password=secret)
    assert secret not in repr(client)
    assert secret not in str(client)
    assert base64.b64encode(f"someone:{secret}".encode()).decode() not in repr(client)


# --- path quoting ---


TRICKY_IDS = ["..", ".", "a/b", "a?b", "100%", "a#b", "a b", "x+y", "é/ü", "a%2Fb"]


@pytest.mark.parametrize("doc_id", TRICKY_IDS)
async def test_document_id_round_trip(
    database: Database, request_counter: RequestCounter, doc_id: str
) -> None:
    doc = Document(database, doc_id)
    doc["value"] = doc_id
    await doc.save()
    fetched = await database.get(doc_id)
    assert fetched["_id"] == doc_id
    assert fetched["value"] == doc_id
    assert [d async for d in database.akeys()] == [doc_id]
    expected_path = f"/{database.id}/{_quote_id(doc_id)}"
    assert request_counter.requests[0] == ("PUT", expected_path)
    assert request_counter.requests[1] == ("GET", expected_path)
    await fetched.delete()
    assert [d async for d in database.akeys()] == []


async def test_dot_segments_do_not_reach_other_resources(
    couchdb: CouchDB, database: Database, request_counter: RequestCounter
) -> None:
    dots = Document(database, "..")
    dots["v"] = "dots"
    await dots.save()
    with pytest.raises(NotFoundError):
        await database.get(".")
    assert request_counter.requests[-1] == ("GET", f"/{database.id}/%2E")
    assert (await database.get(".."))["v"] == "dots"
    info = await database.info()
    assert info["doc_count"] == 1


async def test_database_name_with_a_slash(
    couchdb: CouchDB, request_counter: RequestCounter
) -> None:
    name = f"aiocouch_test_{uuid.uuid4().hex}/sub"
    quoted = _quote_id(name)
    db = await couchdb.create(name)
    try:
        assert request_counter.requests[-1] == ("PUT", f"/{quoted}")
        doc = Document(db, "d1")
        doc["v"] = 1
        await doc.save()
        request_counter.reset()
        assert [d.id async for d in db.docs()] == ["d1"]
        assert [i async for i in db.akeys()] == ["d1"]
        assert [d.id async for d in db.values()] == ["d1"]
        async with db.update_docs(["d1"]) as bulk:
            async for d in bulk:
                d["v"] = 2
        assert bulk.ok is not None
        assert [d.id for d in bulk.ok] == ["d1"]
        assert (await db.get("d1"))["v"] == 2
        assert all(path.startswith(f"/{quoted}/") for _, path in request_counter.requests)
        assert ("GET", f"/{quoted}/_all_docs?include_docs=true") in request_counter.requests
    finally:
        await db.delete()
