"""A node's information, statistics and configuration (aiocouch.node).

pouchdb-server has nothing below ``/_node/{node-name}`` (DIFF.md summary 10), so the
tests that read a node are ``couchdb_only``, written from transcript blocks 14.1-14.24
(and 1.6). Configuration writes use a scratch section, with ``persist=False`` so that
nothing reaches the server's ini files, and remove what they wrote. The node is named
explicitly (the name ``_local`` answered), so that every request of a test reaches the
same node even behind a load balancer.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from aiocouch import CouchDB, InvalidResponseError, NotFoundError
from aiocouch.node import Node
from testserver.request_counter import RequestCounter
from testserver.scripted_server import ScriptedServer, answering, http_response

NO_NODE = "pouchdb-server has nothing below /_node (transcript 14.{})"
SCRATCH_SECTION = "aiocouch_test_scratch"


@pytest.fixture
async def node(couchdb: CouchDB) -> Node:
    """The node that answers, by its own name."""
    name = (await couchdb.node().info())["name"]
    return couchdb.node(name)


@pytest.fixture
async def scratch_key(node: Node) -> AsyncIterator[str]:
    """A key of the scratch section that no one has set; removed again after the test."""
    key = f"key_{uuid.uuid4().hex}"
    yield key
    with contextlib.suppress(NotFoundError):
        await node.config.delete(SCRATCH_SECTION, key, persist=False)


@contextlib.asynccontextmanager
async def scripted_node(response: bytes) -> AsyncIterator[Node]:
    """The ``_local`` node of a server that answers every request with ``response``."""
    async with ScriptedServer(answering(response)) as server:
        client = CouchDB(server.url)
        try:
            yield client.node()
        finally:
            await client.close()


# --- names and arguments, checked before any request ---


@pytest.mark.parametrize(
    ("name", "error"),
    [("", ValueError), ("localhost", ValueError), ("a@b\n", ValueError), (5, TypeError)],
)
def test_a_node_name_is_local_or_name_at_host(
    couchdb: CouchDB, name: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        couchdb.node(name)  # type: ignore[arg-type]
    assert couchdb.node().name == "_local"
    assert couchdb.node("couchdb@127.0.0.1").endpoint == "/_node/couchdb%40127.0.0.1"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda node: node.config.set("s", "k", 5), TypeError),
        (lambda node: node.config.set("s", "k", "two\nlines"), ValueError),
        (lambda node: node.config.get("", "k"), ValueError),
        (lambda node: node.config.delete("s", ""), ValueError),
        (lambda node: node.config.section(None), TypeError),
        (lambda node: node.stats("couchdb", ""), ValueError),
    ],
)
async def test_bad_configuration_arguments_raise_before_any_request(
    couchdb: CouchDB, request_counter: RequestCounter, call: object, error: type[Exception]
) -> None:
    request_counter.reset()
    with pytest.raises(error):
        await call(couchdb.node())  # type: ignore[operator]
    assert request_counter.count == 0


async def test_an_unknown_node_is_not_found(couchdb: CouchDB) -> None:
    # CouchDB: "no such node: nosuchnode@127.0.0.1" (transcript 14.3); pouchdb-server
    # answers 404 to anything below /_node.
    with pytest.raises(NotFoundError):
        await couchdb.node("nosuchnode@127.0.0.1").info()


# --- information and statistics ---


@pytest.mark.couchdb_only(NO_NODE.format("1, 14.2"))
async def test_the_local_node_tells_its_name_and_the_named_node_its_version(
    couchdb: CouchDB, node: Node
) -> None:
    membership = await couchdb.membership()
    assert node.name in membership["cluster_nodes"]
    info = await node.info()
    assert info["couchdb"] == "Welcome"
    assert info["version"] == (await couchdb.info())["version"]


@pytest.mark.couchdb_only(NO_NODE.format("4"))
async def test_versions_name_erlang_and_the_javascript_engine(node: Node) -> None:
    versions = await node.versions()
    assert versions["erlang"]["version"]
    assert "sha256" in versions["erlang"]["supported_hashes"]
    assert versions["javascript_engine"]["name"]


@pytest.mark.couchdb_only(NO_NODE.format("5"))
async def test_stats_hold_the_metrics_tree_and_narrow_to_one_metric(node: Node) -> None:
    stats = await node.stats()
    assert {"couchdb", "fabric", "mem3"} <= set(stats)
    assert stats["couchdb"]["httpd"]["requests"]["type"] == "counter"
    request_time = await node.stats("couchdb", "request_time")
    assert request_time["type"] == "histogram"
    assert "percentile" in request_time["value"]


@pytest.mark.couchdb_only(NO_NODE.format("6"))
async def test_system_reports_the_virtual_machine(node: Node) -> None:
    system = await node.system()
    assert system["uptime"] >= 0
    assert system["memory"]["processes"] > 0
    assert system["process_count"] <= system["process_limit"]


@pytest.mark.couchdb_only(NO_NODE.format("7"))
async def test_prometheus_text_parses_line_by_line(node: Node) -> None:
    text = await node.prometheus()
    assert "\r" not in text
    lines = text.splitlines()
    assert "# TYPE couchdb_couch_log_requests_total counter" in lines
    samples = [line for line in lines if line.startswith("couchdb_couch_log_requests_total{")]
    assert samples and all(float(line.rsplit(" ", 1)[1]) >= 0 for line in samples)


async def test_prometheus_help_lines_ended_by_a_bare_carriage_return_are_split() -> None:
    # CouchDB 3.4 ends "# HELP" lines with "\r" (transcript 14.7).
    body = b'\n# HELP c_total requests\r# TYPE c_total counter\nc_total{level="info"} 3\n'
    response = http_response(200, body, content_type="text/plain; version=2.0")
    async with scripted_node(response) as node:
        text = await node.prometheus()
    assert text.splitlines() == [
        "",
        "# HELP c_total requests",
        "# TYPE c_total counter",
        'c_total{level="info"} 3',
    ]


async def test_a_prometheus_body_that_is_not_utf8_raises() -> None:
    response = http_response(200, b"# HELP \xff\n", content_type="text/plain")
    async with scripted_node(response) as node:
        with pytest.raises(InvalidResponseError, match="not valid UTF-8"):
            await node.prometheus()


@pytest.mark.couchdb_only(NO_NODE.format("8"))
async def test_smoosh_status_lists_the_compaction_channels(node: Node) -> None:
    status = await node.smoosh_status()
    assert {"ratio_dbs", "slack_dbs", "ratio_views"} <= set(status["channels"])
    assert set(status["channels"]["ratio_dbs"]) >= {"active", "starting", "waiting"}


# --- configuration ---


@pytest.mark.couchdb_only(NO_NODE.format("11, 14.13, 14.14 and 1.6"))
async def test_configuration_reads_agree_from_whole_to_section_to_key(node: Node) -> None:
    config = await node.config.all()
    assert config["chttpd"]["port"].isdigit()
    assert await node.config.section("chttpd") == config["chttpd"]
    assert await node.config.get("chttpd", "port") == config["chttpd"]["port"]
    assert await node.config.section("aiocouch_no_such_section") == {}
    with pytest.raises(NotFoundError):
        await node.config.get("chttpd", "aiocouch_no_such_key")


@pytest.mark.couchdb_only(NO_NODE.format("15-14.18, 14.23 and 14.24"))
async def test_configuration_writes_answer_the_old_value(node: Node, scratch_key: str) -> None:
    config = node.config
    assert await config.set(SCRATCH_SECTION, scratch_key, "value1", persist=False) == ""
    assert await config.get(SCRATCH_SECTION, scratch_key) == "value1"
    assert (await config.section(SCRATCH_SECTION))[scratch_key] == "value1"
    assert await config.set(SCRATCH_SECTION, scratch_key, "value2", persist=False) == "value1"
    assert await config.delete(SCRATCH_SECTION, scratch_key, persist=False) == "value2"
    with pytest.raises(NotFoundError):
        await config.get(SCRATCH_SECTION, scratch_key)
    with pytest.raises(NotFoundError):
        await config.delete(SCRATCH_SECTION, scratch_key, persist=False)


@pytest.mark.couchdb_only(NO_NODE.format("20 and 14.21"))
async def test_reload_drops_the_values_that_were_not_persisted(
    node: Node, scratch_key: str
) -> None:
    await node.config.set(SCRATCH_SECTION, scratch_key, "value1", persist=False)
    await node.config.reload()
    with pytest.raises(NotFoundError):
        await node.config.get(SCRATCH_SECTION, scratch_key)


@pytest.mark.couchdb_only(NO_NODE.format("15"))
async def test_a_configuration_write_sends_the_value_as_a_json_string_unpersisted(
    node: Node, scratch_key: str, request_counter: RequestCounter
) -> None:
    request_counter.reset()
    await node.config.set(SCRATCH_SECTION, scratch_key, ' "quoted" ', persist=False)
    assert await node.config.get(SCRATCH_SECTION, scratch_key) == '"quoted"'  # trimmed
    method, path, headers = request_counter.headers[0]
    assert (method, headers["X-Couch-Persist"]) == ("PUT", "false")
    assert path.endswith(f"/_config/{SCRATCH_SECTION}/{scratch_key}")
