"""Pure unit tests of the HTTP/1.1 response parser ``aiocouch._http.HTTPConnection``.

No server: a fake transport records what the protocol does with it (writes, pauses,
resumes, close), and the tests feed response bytes through ``connection_made``,
``data_received`` and ``connection_lost`` exactly as asyncio would. The same defects
over real sockets, through the public API and on both transports, are in
``test_hostile_server.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest

from aiocouch._http import HTTPConnection, ResponseHead, header_block
from aiocouch._transport import check_headers
from aiocouch.exception import IncompleteResponseError, InvalidResponseError, ReadTimeoutError
from testserver.random_pieces import random_pieces

T = TypeVar("T")

REQUEST = b"GET /db/doc HTTP/1.1\r\nHost: couch\r\n\r\n"
MIB = 1024 * 1024


class FakeTransport(asyncio.Transport):
    """Records the protocol's calls; reading is paused like a real transport's."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.calls: list[str] = []
        self.closed = False
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True
        self.calls.append("close")

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.paused = False
        self.calls.append("resume")

    def is_reading(self) -> bool:
        return not self.paused


def connect() -> tuple[HTTPConnection, FakeTransport]:
    connection = HTTPConnection()
    transport = FakeTransport()
    connection.connection_made(transport)
    return connection, transport


def sent(expect_body: bool = True) -> tuple[HTTPConnection, FakeTransport]:
    """A connection that has sent one request."""
    connection, transport = connect()
    connection.send(REQUEST, expect_body=expect_body)
    return connection, transport


async def soon(awaitable: Awaitable[T]) -> T:
    """``awaitable``, or a test failure instead of a hang."""
    return await asyncio.wait_for(awaitable, 2)


async def exchange(
    pieces: Iterable[bytes], *, expect_body: bool = True, lose: bool = False
) -> tuple[HTTPConnection, ResponseHead, bytes]:
    """Feeds ``pieces`` (then a connection loss if ``lose``); the head and whole body."""
    connection, _ = sent(expect_body)
    for piece in pieces:
        connection.data_received(piece)
    if lose:
        connection.connection_lost(None)
    head = await soon(connection.read_head())
    body = await soon(connection.read_body())
    return connection, head, body


async def feed_like_a_socket(
    connection: HTTPConnection,
    transport: FakeTransport,
    raw: bytes,
    *,
    piece: int = 256 * 1024,
    eager: bool = False,
) -> None:
    """Feeds ``raw`` in socket-sized pieces, and nothing while reading is paused.

    Between pieces it lets the reader run, unless ``eager`` (a reader slower than the
    network): then it yields only while paused.
    """
    for start in range(0, len(raw), piece):
        while transport.paused:
            await asyncio.sleep(0)
        connection.data_received(raw[start : start + piece])
        if not eager:
            await asyncio.sleep(0)


def byte_by_byte(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


def two_pieces(raw: bytes) -> Iterator[list[bytes]]:
    """``raw`` split in two at every byte boundary."""
    for i in range(1, len(raw)):
        yield [raw[:i], raw[i:]]


def every_split(raw: bytes) -> Iterator[list[bytes]]:
    """Whole, byte by byte, in two at every boundary, and in random pieces."""
    yield [raw]
    yield byte_by_byte(raw)
    yield from two_pieces(raw)
    for seed in range(20):
        yield random_pieces(raw, seed, 17)


LENGTH_BODY = b'{"_id":"doc","value":"\xc3\xa9\r\n"}'
LENGTH_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 28\r\n\r\n" + LENGTH_BODY
)

CHUNKED_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n"
    b"1\r\n \r\n"
    b"A\r\n0123456789\r\n"
    b"3\r\n\r\n\r\r\n"
    b"0\r\n"
    b"X-Trailer: yes\r\n"
    b"X-Other: 1\r\n"
    b"\r\n"
)
CHUNKED_BODY = b"hello 0123456789\r\n\r"


# --- Content-Length ---


async def test_send_writes_the_request() -> None:
    _, transport = sent()
    assert transport.written == [REQUEST]


async def test_content_length_body() -> None:
    connection, head, body = await exchange([LENGTH_RESPONSE])
    assert (head.status, head.reason) == (200, "OK")
    assert head.headers["Content-Type"] == "application/json"
    assert body == LENGTH_BODY
    assert connection.complete
    assert connection.reusable


async def test_content_length_body_fed_one_byte_at_a_time() -> None:
    connection, head, body = await exchange(byte_by_byte(LENGTH_RESPONSE))
    assert head.status == 200
    assert body == LENGTH_BODY
    assert connection.reusable


async def test_content_length_body_split_at_every_byte_boundary() -> None:
    for pieces in two_pieces(LENGTH_RESPONSE):
        connection, _, body = await exchange(pieces)
        assert body == LENGTH_BODY, pieces
        assert connection.complete and connection.reusable, pieces


async def test_content_length_body_in_random_pieces() -> None:
    for seed in range(50):
        connection, _, body = await exchange(random_pieces(LENGTH_RESPONSE, seed, 17))
        assert body == LENGTH_BODY, seed
        assert connection.reusable, seed


async def read_pieces(connection: HTTPConnection) -> list[bytes]:
    """Every piece ``read_chunk`` hands out, up to the end of the body."""
    await connection.read_head()
    pieces = []
    while piece := await connection.read_chunk():
        pieces.append(piece)
    return pieces


async def test_content_length_body_read_piece_by_piece() -> None:
    connection, transport = sent()
    reader = asyncio.ensure_future(read_pieces(connection))
    await feed_like_a_socket(connection, transport, LENGTH_RESPONSE, piece=1)
    assert await soon(reader) == byte_by_byte(LENGTH_BODY)
    assert connection.complete


async def test_zero_content_length() -> None:
    connection, head, body = await exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    assert head.status == 200
    assert body == b""
    assert connection.complete and connection.reusable


async def test_reader_waits_until_the_head_and_body_arrive() -> None:
    connection, _ = sent()
    head_task = asyncio.ensure_future(connection.read_head())
    await asyncio.sleep(0)
    assert not head_task.done()
    connection.data_received(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\n")
    assert (await soon(head_task)).status == 201
    body_task = asyncio.ensure_future(connection.read_body())
    connection.data_received(b"ab")
    await asyncio.sleep(0)
    assert not body_task.done()
    connection.data_received(b"cd")
    assert await soon(body_task) == b"abcd"


async def test_two_responses_in_turn_on_one_connection() -> None:
    connection, transport = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
    await soon(connection.read_head())
    assert await soon(connection.read_body()) == b"one"
    assert connection.complete and connection.reusable
    connection.send(REQUEST, expect_body=True)
    assert not connection.complete
    connection.data_received(b"HTTP/1.1 404 Object Not Found\r\nContent-Length: 3\r\n\r\ntwo")
    head = await soon(connection.read_head())
    assert (head.status, head.reason) == (404, "Object Not Found")
    assert await soon(connection.read_body()) == b"two"
    assert transport.written == [REQUEST, REQUEST]
    assert connection.reusable and not transport.closed


# --- responses without a body ---


async def test_head_request_has_no_body_despite_content_length() -> None:
    connection, head, body = await exchange(
        [b'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: "1-a"\r\n\r\n'], expect_body=False
    )
    assert head.headers["Content-Length"] == "1234"
    assert body == b""
    assert connection.complete and connection.reusable


async def test_head_request_has_no_body_despite_chunked_encoding() -> None:
    connection, _, body = await exchange(
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"], expect_body=False
    )
    assert body == b""
    assert connection.complete and connection.reusable


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_for_204_and_304(status: int) -> None:
    response = f"HTTP/1.1 {status} Whatever\r\nContent-Length: 10\r\n\r\n".encode()
    connection, head, body = await exchange([response])
    assert head.status == status
    assert body == b""
    assert connection.complete and connection.reusable


async def test_100_continue_before_the_response_is_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + LENGTH_RESPONSE
    for pieces in every_split(raw):
        connection, head, body = await exchange(pieces)
        assert head.status == 200, pieces
        assert body == LENGTH_BODY, pieces
        assert connection.reusable


async def test_several_informational_heads_are_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    _, head, body = await exchange([raw + LENGTH_RESPONSE])
    assert head.status == 200
    assert "Link" not in head.headers
    assert body == LENGTH_BODY


# --- chunked ---


async def test_chunked_body_with_extensions_and_trailers() -> None:
    connection, head, body = await exchange([CHUNKED_RESPONSE])
    assert head.status == 200
    assert body == CHUNKED_BODY
    assert "X-Trailer" not in head.headers
    assert connection.complete and connection.reusable


async def test_chunked_body_split_at_every_byte_boundary() -> None:
    for pieces in every_split(CHUNKED_RESPONSE):
        connection, _, body = await exchange(pieces)
        assert body == CHUNKED_BODY, pieces
        assert connection.complete and connection.reusable, pieces


async def test_chunked_body_read_piece_by_piece() -> None:
    connection, transport = sent()
    reader = asyncio.ensure_future(read_pieces(connection))
    await feed_like_a_socket(connection, transport, CHUNKED_RESPONSE, piece=1)
    pieces = await soon(reader)
    assert b"".join(pieces) == CHUNKED_BODY
    assert len(pieces) == len(CHUNKED_BODY)
    assert connection.complete


async def test_chunked_body_without_trailers() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    for pieces in every_split(raw):
        connection, _, body = await exchange(pieces)
        assert body == b"abc", pieces
        assert connection.complete and connection.reusable, pieces


async def test_empty_chunked_body() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    connection, _, body = await exchange([raw])
    assert body == b""
    assert connection.complete and connection.reusable


async def test_hex_chunk_sizes_in_either_case() -> None:
    data = bytes(range(256)) * 2
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n200\r\n" + data + b"\r\n0\r\n\r\n"
    _, _, body = await exchange([raw])
    assert body == data
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1F\r\n" + b"x" * 31
    _, _, body = await exchange([raw + b"\r\n0\r\n\r\n"])
    assert body == b"x" * 31


async def test_content_length_with_chunked_is_refused() -> None:
    # RFC 9112 6.3: a response with both may be an attempt at response splitting.
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    )
    connection, transport = sent()
    connection.data_received(raw)
    with pytest.raises(InvalidResponseError, match="Transfer-Encoding"):
        await soon(connection.read_head())
    assert transport.closed


# --- close-delimited bodies and reusability ---


async def test_close_delimited_body_is_read_until_the_connection_is_lost() -> None:
    connection, _ = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome ")
    await soon(connection.read_head())
    body_task = asyncio.ensure_future(connection.read_body())
    connection.data_received(b"more")
    await asyncio.sleep(0)
    assert not body_task.done()
    connection.connection_lost(None)
    assert await soon(body_task) == b"some more"
    assert not connection.reusable


async def test_close_delimited_body_is_never_reusable() -> None:
    for pieces in every_split(b"HTTP/1.1 200 OK\r\n\r\nabc"):
        connection, _, body = await exchange(pieces, lose=True)
        assert body == b"abc"
        assert not connection.reusable


async def test_close_delimited_body_cut_by_a_reset_is_an_error() -> None:
    connection, _ = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\n\r\npartial")
    await soon(connection.read_head())
    connection.connection_lost(ConnectionResetError())
    with pytest.raises(IncompleteResponseError):
        await soon(connection.read_body())


async def test_connection_close_header_makes_it_not_reusable() -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok"
    connection, _, body = await exchange([raw])
    assert body == b"ok"
    assert connection.complete
    assert not connection.reusable


@pytest.mark.parametrize(
    ("version", "fields", "reusable"),
    [
        (b"1.1", b"Connection: keep-alive\r\n", True),
        (b"1.1", b"connection: KEEP-ALIVE\r\n", True),
        (b"1.1", b"Connection: keep-alive\r\nConnection: keep-alive\r\n", True),
        (b"1.1", b"Connection: keep-alive, close\r\n", False),
        (b"1.1", b"Connection: keep-alive\r\nConnection: close\r\n", False),
        (b"1.1", b"Connection: close \r\n", False),
        (b"1.0", b"Connection: Keep-Alive\r\n", True),
        (b"1.0", b"Connection: keep-alive \r\n", True),
        (b"1.0", b"X-Connection: keep-alive\r\n", False),
        (b"1.1", b"X-Connection: close\r\n", True),
    ],
)
async def test_connection_fields_decide_reuse(
    version: bytes, fields: bytes, reusable: bool
) -> None:
    raw = b"HTTP/" + version + b" 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nok"
    connection, _, body = await exchange([raw])
    assert body == b"ok"
    assert connection.reusable is reusable


async def test_http_1_0_without_keep_alive_is_not_reusable() -> None:
    connection, _, body = await exchange([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    assert body == b"ok"
    assert not connection.reusable


async def test_http_1_0_with_keep_alive_is_reusable() -> None:
    raw = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
    connection, _, body = await exchange([raw])
    assert body == b"ok"
    assert connection.reusable


async def test_bytes_after_a_complete_response_make_it_not_reusable() -> None:
    connection, _, body = await exchange([LENGTH_RESPONSE + b"HTTP/1.1 200 OK\r\n"])
    assert body == LENGTH_BODY
    assert not connection.reusable


async def test_bytes_after_a_complete_chunked_response_make_it_not_reusable() -> None:
    connection, _, body = await exchange([CHUNKED_RESPONSE, b"junk"])
    assert body == CHUNKED_BODY
    assert not connection.reusable


async def test_bytes_arriving_on_an_idle_connection_make_it_not_reusable() -> None:
    connection, _, _ = await exchange([LENGTH_RESPONSE])
    assert connection.reusable
    connection.data_received(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    assert not connection.reusable


async def test_connection_lost_while_idle_is_no_error() -> None:
    connection, _, body = await exchange([LENGTH_RESPONSE])
    connection.connection_lost(None)
    assert body == LENGTH_BODY
    assert connection.closed and not connection.reusable


# --- errors ---


async def test_lost_before_the_head_is_server_disconnected() -> None:
    connection, _ = sent()
    connection.connection_lost(None)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await soon(connection.read_head())
    assert not connection.received


async def test_lost_while_waiting_for_the_head_is_server_disconnected() -> None:
    connection, _ = sent()
    task = asyncio.ensure_future(connection.read_head())
    await asyncio.sleep(0)
    connection.connection_lost(ConnectionResetError())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await soon(task)


async def test_lost_within_the_head_is_server_disconnected() -> None:
    connection, _ = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Le")
    connection.connection_lost(None)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await soon(connection.read_head())
    assert connection.received


async def test_lost_mid_body_is_an_incomplete_response() -> None:
    connection, _ = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    await soon(connection.read_head())
    connection.connection_lost(None)
    with pytest.raises(IncompleteResponseError) as caught:
        await soon(connection.read_body())
    assert isinstance(caught.value, aiohttp.ClientPayloadError)
    assert caught.value.status == 200
    assert not connection.complete


async def test_lost_mid_body_while_reading_is_a_payload_error() -> None:
    connection, _ = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    await soon(connection.read_head())
    assert await soon(connection.read_chunk()) == b"abc"
    task = asyncio.ensure_future(connection.read_chunk())
    await asyncio.sleep(0)
    connection.connection_lost(None)
    with pytest.raises(aiohttp.ClientPayloadError):
        await soon(task)


async def test_lost_mid_chunked_body_is_a_payload_error() -> None:
    for cut in range(CHUNKED_RESPONSE.index(b"\r\n\r\n") + 4, len(CHUNKED_RESPONSE)):
        connection, _ = sent()
        connection.data_received(CHUNKED_RESPONSE[:cut])
        connection.connection_lost(None)
        await soon(connection.read_head())
        with pytest.raises(aiohttp.ClientPayloadError):
            await soon(connection.read_body())


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["no-version", "no-status", "nothing-after-version", "letters-in-status"],
)
async def test_invalid_status_line_is_an_invalid_response(raw: bytes) -> None:
    connection, transport = sent()
    connection.data_received(raw)
    with pytest.raises(InvalidResponseError):
        await soon(connection.read_head())
    assert transport.closed
    assert not connection.reusable


@pytest.mark.parametrize(
    "size",
    [b"zz", b"", b";ext", b"5 5", b"-5", b"+5", b"0x5", b"0_5", b"5\x00", b"1" * 17],
    ids=[
        "not-hex",
        "empty",
        "only-extension",
        "two-numbers",
        "negative",
        "plus",
        "0x",
        "underscore",
        "nul",
        "overflowing",
    ],
)
async def test_invalid_chunk_size_is_an_invalid_response(size: bytes) -> None:
    connection, transport = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    await soon(connection.read_head())
    connection.data_received(size + b"\r\nhello\r\n0\r\n\r\n")
    with pytest.raises(InvalidResponseError):
        await soon(connection.read_body())
    assert transport.closed
    assert not connection.reusable


@pytest.mark.parametrize(
    "length",
    [b"abc", b"-1", b"1, 2", b"+1", b"0x1", b"0_1", b"1" * 21, b""],
    ids=["text", "negative", "list", "plus", "hex", "underscore", "overflowing", "empty"],
)
async def test_invalid_content_length_is_an_invalid_response(length: bytes) -> None:
    connection, transport = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\nx")
    with pytest.raises(InvalidResponseError):
        await soon(connection.read_head())
    assert transport.closed


async def test_too_large_head_is_an_invalid_response() -> None:
    connection, transport = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"y" * (70 * 1024))
    with pytest.raises(InvalidResponseError):
        await soon(connection.read_head())
    assert transport.closed


# --- headers ---


async def test_headers_are_case_insensitive_and_repeated_headers_kept() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type: application/json\r\n"
        b"Set-Cookie: a=1\r\n"
        b"SET-COOKIE: b=2\r\n"
        b'ETag:"1-abc"\r\n'
        b"X-Spaced:   padded value  \r\n"
        b"X-Colon: a:b\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    _, head, _ = await exchange([raw])
    assert head.headers["Content-Type"] == "application/json"
    assert head.headers["CONTENT-TYPE"] == "application/json"
    assert head.headers.getall("set-cookie") == ["a=1", "b=2"]
    assert head.headers["etag"] == '"1-abc"'
    assert head.headers["x-spaced"] == "padded value"
    assert head.headers["X-Colon"] == "a:b"


async def test_the_head_is_read_whole_however_it_arrives() -> None:
    # (empty lines before a status line are skipped, informational heads too)
    raw = (
        b"\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b'HTTP/1.1 201 Created\r\nX-A: 1\r\nx-a:\t2 \r\nETag: "1-a"\r\n'
        b"Content-Length: 2\r\n\r\nok"
    )
    for pieces in every_split(raw):
        connection, head, body = await exchange(pieces)
        assert (head.status, head.reason, body) == (201, "Created", b"ok"), pieces
        assert list(head.headers.items()) == [
            ("X-A", "1"),
            ("x-a", "2"),
            ("ETag", '"1-a"'),
            ("Content-Length", "2"),
        ], pieces
        assert connection.reusable, pieces


async def test_a_head_answer_followed_by_more_bytes_is_not_reusable() -> None:
    head_only = b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "1-a"\r\n\r\n'
    connection, head, _ = await exchange([head_only], expect_body=False)
    assert head.headers["ETag"] == '"1-a"' and connection.reusable
    for pieces in ([head_only + b"hello"], [head_only[:10], head_only[10:] + b"x"]):
        connection, head, _ = await exchange(pieces, expect_body=False)
        assert head.headers["ETag"] == '"1-a"'
        assert not connection.reusable, pieces


async def test_reason_phrase_with_spaces_and_without() -> None:
    _, head, _ = await exchange([b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n"])
    assert (head.status, head.reason) == (418, "I'm a teapot")
    _, head, _ = await exchange([b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"])
    assert (head.status, head.reason) == (200, "")


async def test_non_ascii_header_values_are_latin_1() -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nContent-Length: 0\r\n\r\n"
    _, head, _ = await exchange([raw])
    assert head.headers["X-Name"] == "caf\xe9"


# --- back-pressure ---


async def test_more_than_4_mib_buffered_pauses_reading_and_reading_resumes_it() -> None:
    connection, transport = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (6 * MIB))
    await soon(connection.read_head())
    connection.data_received(b"a" * (4 * MIB))
    assert transport.calls == []
    connection.data_received(b"b")
    assert transport.calls == ["pause"]
    connection.data_received(b"c" * MIB)
    assert transport.calls == ["pause"]
    chunk = await soon(connection.read_chunk())
    assert chunk == b"a" * (4 * MIB) + b"b" + b"c" * MIB
    assert transport.calls == ["pause", "resume"]
    connection.data_received(b"d" * (MIB - 1))
    assert await soon(connection.read_chunk()) == b"d" * (MIB - 1)
    assert await soon(connection.read_chunk()) == b""
    assert transport.calls == ["pause", "resume"]
    assert connection.complete and connection.reusable


async def test_chunked_body_also_pauses_above_4_mib() -> None:
    connection, transport = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    connection.data_received(b"%x\r\n" % (5 * MIB) + b"z" * (5 * MIB) + b"\r\n")
    assert transport.calls == ["pause"]
    assert await soon(connection.read_chunk()) == b"z" * (5 * MIB)
    assert transport.calls == ["pause", "resume"]
    connection.data_received(b"0\r\n\r\n")
    assert await soon(connection.read_chunk()) == b""


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_read_body_of_more_than_4_mib_resumes_reading(chunked: bool) -> None:
    data = bytes(range(256)) * (40 * 1024)  # 10 MiB
    if chunked:
        framed = b"%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n"
        raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed
    else:
        raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data
    connection, transport = sent()
    feeder = asyncio.ensure_future(feed_like_a_socket(connection, transport, raw, eager=True))
    await soon(connection.read_head())
    body = await soon(connection.read_body())
    await soon(feeder)
    assert body == data
    assert "pause" in transport.calls
    assert not transport.paused
    assert connection.complete and connection.reusable


async def test_body_completed_while_paused_leaves_reading_resumed() -> None:
    # the read that crosses the limit also completes the body: a connection handed back to
    # the pool must not stay paused, or its next response would never be read
    connection, transport = sent()
    size = 4 * MIB + 10
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    connection.data_received(b"q" * size)
    assert transport.paused
    assert connection.complete is False
    assert await soon(connection.read_body()) == b"q" * size
    assert not transport.paused
    assert connection.complete and connection.reusable
    connection.send(REQUEST, expect_body=True)
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert await soon(connection.read_body()) == b"ok"


async def test_read_chunk_with_coalesce_returns_everything() -> None:
    data = bytes(range(256)) * 40
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in random_pieces(data, 7, 17))
    raw += b"0\r\n\r\n"
    connection, transport = sent()
    feeder = asyncio.ensure_future(feed_like_a_socket(connection, transport, raw, piece=97))
    await soon(connection.read_head())
    pieces = []
    while chunk := await soon(connection.read_chunk(coalesce=True)):
        pieces.append(chunk)
    await soon(feeder)
    assert b"".join(pieces) == data
    assert connection.complete


async def test_read_chunk_with_coalesce_gathers_pieces_arriving_meanwhile() -> None:
    connection, _ = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab")
    await soon(connection.read_head())
    loop = asyncio.get_running_loop()
    loop.call_soon(connection.data_received, b"cd")
    assert await soon(connection.read_chunk(coalesce=True)) == b"abcd"
    connection.data_received(b"ef")
    assert await soon(connection.read_chunk(coalesce=True)) == b"ef"
    assert await soon(connection.read_chunk(coalesce=True)) == b""


# --- fail() and close() ---


async def test_fail_with_a_timeout_wakes_the_head_reader() -> None:
    connection, transport = sent()
    task = asyncio.ensure_future(connection.read_head())
    await asyncio.sleep(0)
    connection.fail(asyncio.TimeoutError())
    with pytest.raises(asyncio.TimeoutError):
        await soon(task)
    assert transport.closed
    assert not connection.reusable


async def test_fail_with_a_timeout_wakes_the_body_reader() -> None:
    connection, transport = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    await soon(connection.read_head())
    task = asyncio.ensure_future(connection.read_body())
    await asyncio.sleep(0)
    connection.fail(asyncio.TimeoutError())
    connection.connection_lost(None)  # what the closed transport reports next
    with pytest.raises(asyncio.TimeoutError):
        await soon(task)
    assert transport.closed


async def test_timeout_in_a_close_delimited_body_is_not_its_end() -> None:
    connection, _ = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\n\r\npartial")
    await soon(connection.read_head())
    connection.fail(asyncio.TimeoutError())
    connection.connection_lost(None)
    with pytest.raises(asyncio.TimeoutError):
        await soon(connection.read_body())
    connection, _ = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\n\r\npartial")
    await soon(connection.read_head())
    connection.fail(asyncio.TimeoutError())
    connection.connection_lost(None)
    assert await soon(connection.read_chunk()) == b"partial"
    with pytest.raises(asyncio.TimeoutError):
        await soon(connection.read_chunk())


async def test_fail_after_the_response_is_complete_keeps_it() -> None:
    connection, _, body = await exchange([LENGTH_RESPONSE])
    connection.fail(asyncio.TimeoutError())
    assert body == LENGTH_BODY
    assert connection.closed and not connection.reusable


async def test_close_closes_the_transport() -> None:
    connection, transport = sent()
    connection.close()
    assert transport.closed
    assert connection.closed and not connection.reusable


async def test_an_unread_body_is_not_complete() -> None:
    connection, _ = sent()
    connection.data_received(LENGTH_RESPONSE)
    await soon(connection.read_head())
    assert not connection.complete
    assert await soon(connection.read_chunk()) == LENGTH_BODY
    assert connection.complete


# --- header_block and the shared header check ---


def test_header_block_writes_one_line_per_header() -> None:
    block = header_block({"Host": "couch:5984", "Accept": "application/json", "X-N": 3})
    assert block == "Host: couch:5984\r\nAccept: application/json\r\nX-N: 3\r\n"
    assert header_block({}) == ""


@pytest.mark.parametrize(
    "bad", ["\r", "\n", "\r\n", "a\r\nX-Injected: 1", "\x00", "\x0b", "\x1f", "\x7f"]
)
def test_check_headers_refuses_control_characters_in_values(bad: str) -> None:
    with pytest.raises(ValueError, match="X-Value"):
        check_headers({"X-Value": bad})


@pytest.mark.parametrize("bad", ["X\r", "X\nY", "X\r\nY", "X Y", "X:Y", "", "X\x00"])
def test_check_headers_refuses_names_that_are_no_token(bad: str) -> None:
    with pytest.raises(ValueError, match="Invalid HTTP header name"):
        check_headers({bad: "value"})


def test_check_headers_allows_tabs_and_latin_1_and_utf_8() -> None:
    check_headers(
        {"X-Tab": "a\tb", "X-Latin": "caf\xe9", "Destination": "d\u00e9j\u00e0 \U0001f600"}
    )


def test_check_headers_never_shows_a_value() -> None:
    with pytest.raises(ValueError) as caught:
        check_headers({"Authorization": "Basic c2VjcmV0\n"})
    assert "c2VjcmV0" not in str(caught.value)


# --- time limits ---


async def test_silence_before_the_head_longer_than_sock_read_raises_read_timeout() -> None:
    connection, transport = connect()
    connection.send(REQUEST, expect_body=True, sock_read=0.05)
    with pytest.raises(ReadTimeoutError, match="sock_read"):
        await soon(connection.read_head())
    assert transport.closed and not connection.reusable


async def test_each_arrival_restarts_the_sock_read_limit() -> None:
    connection, _ = connect()
    connection.send(REQUEST, expect_body=True, sock_read=1.0)
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
    # 1.2 s in all, longer than sock_read; each gap is 0.7 s shorter than it
    for byte in b"0123":
        await asyncio.sleep(0.3)
        connection.data_received(bytes([byte]))
    assert await soon(connection.read_body()) == b"0123"
    assert connection.complete and connection.reusable


async def test_silence_while_reading_is_paused_is_no_timeout() -> None:
    connection, transport = connect()
    connection.send(REQUEST, expect_body=True, sock_read=0.05)
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (6 * MIB))
    connection.data_received(b"a" * (5 * MIB))
    assert transport.paused
    await asyncio.sleep(0.2)  # a slow consumer, not a silent server
    assert len(await soon(connection.read_chunk())) == 5 * MIB
    # reading resumed: a silence counts again
    with pytest.raises(ReadTimeoutError):
        await soon(connection.read_chunk())


async def test_the_deadline_passes_even_while_bytes_trickle_in() -> None:
    connection, _ = connect()
    loop = asyncio.get_running_loop()
    connection.send(REQUEST, expect_body=True, sock_read=1.0, deadline=loop.time() + 0.2)
    connection.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    reader = asyncio.ensure_future(connection.read_body())
    for _ in range(100):
        if reader.done():
            break
        connection.data_received(b"1\r\n \r\n")
        await asyncio.sleep(0.02)
    with pytest.raises(ReadTimeoutError, match="total"):
        await soon(reader)


async def test_a_complete_response_stops_the_timer() -> None:
    connection, transport = connect()
    loop = asyncio.get_running_loop()
    connection.send(REQUEST, expect_body=True, sock_read=0.05, deadline=loop.time() + 0.05)
    connection.data_received(LENGTH_RESPONSE)
    await asyncio.sleep(0.15)
    assert await soon(connection.read_body()) == LENGTH_BODY
    assert connection.reusable and not transport.closed


# --- bounded memory and CPU ---


@pytest.mark.parametrize(
    ("start", "endless"),
    [
        (b"HTTP/1.1 200 OK\r\nX: ", b"y"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"1"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;", b"e"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ", b"t"),
    ],
    ids=["head", "chunk-size", "chunk-extension", "trailer"],
)
async def test_an_endless_line_fed_in_small_pieces_is_refused_early(
    start: bytes, endless: bytes
) -> None:
    connection, transport = sent()
    connection.data_received(start)
    fed = 0
    for _ in range(200_000):  # 1.6 MB in 8-byte pieces: quadratic scanning would crawl
        connection.data_received(endless * 8)
        fed += 8
        if transport.closed:
            break
    assert transport.closed
    assert fed <= 64 * 1024 + 8
    with pytest.raises(InvalidResponseError):  # (an endless chunk size overflows first)
        await soon(connection.read_body())


async def test_a_head_with_bare_lf_line_ends_is_refused_before_it_ends() -> None:
    connection, transport = sent()
    connection.data_received(b"HTTP/1.1 200 OK\nContent-Length: 2\n")
    with pytest.raises(InvalidResponseError):
        await soon(connection.read_head())
    assert transport.closed


async def test_a_switch_to_another_protocol_is_refused() -> None:
    connection, transport = sent()
    connection.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
    )
    with pytest.raises(InvalidResponseError, match="another protocol"):
        await soon(connection.read_head())
    assert transport.closed


async def test_more_than_256_header_fields_are_refused() -> None:
    connection, _ = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 257 + b"\r\n")
    with pytest.raises(InvalidResponseError, match="header fields"):
        await soon(connection.read_head())


# --- writing large bodies ---


class FullSocketTransport(FakeTransport):
    """A transport whose buffer is full after every write of a body piece."""

    def __init__(self, protocol: HTTPConnection) -> None:
        super().__init__()
        self.protocol = protocol

    def write(self, data: Any) -> None:
        super().write(data)
        if len(data) > len(REQUEST):
            self.protocol.pause_writing()


async def test_a_large_body_is_written_in_pieces_each_after_a_drain() -> None:
    connection = HTTPConnection()
    transport = FullSocketTransport(connection)
    connection.connection_made(transport)
    body = bytes(range(256)) * 4096  # 1 MiB
    writer = asyncio.ensure_future(
        connection.send_in_pieces(REQUEST, body, expect_body=True, sock_read=10.0)
    )
    await asyncio.sleep(0.01)
    assert len(transport.written) == 2  # the head, one piece, then the buffer was full
    while not writer.done():
        written = len(transport.written)
        connection.resume_writing()
        await asyncio.sleep(0.01)
        assert len(transport.written) <= written + 1
    await writer
    assert b"".join(transport.written) == REQUEST + body
    assert len(transport.written) == 1 + 4


async def test_writing_stops_when_the_server_closes_mid_body() -> None:
    connection, transport = connect()
    connection.pause_writing()
    writer = asyncio.ensure_future(connection.send_in_pieces(REQUEST, b"x" * MIB, expect_body=True))
    await asyncio.sleep(0.01)
    connection.data_received(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    connection.connection_lost(None)
    await soon(writer)
    assert transport.written == [REQUEST]
    assert (await soon(connection.read_head())).status == 413
