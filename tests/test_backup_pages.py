"""Unit tests of how a backup reads where the next page of the changes feed starts (pure
functions): from the end of a page's body alone, so that the next page is asked for
before this one is decoded, and never from a ``last_seq`` inside a document."""

from __future__ import annotations

from aiocouch import _json
from aiocouch._backing_up import _UNKNOWN, _decoded_page, _last_seq_at_end

ROW = b'{"seq":"5-g1A","id":"a","changes":[{"rev":"1-x"}],"doc":{"_id":"a","_rev":"1-x"}}'


def test_the_end_of_couchdbs_and_pouchdbs_pages_gives_their_last_seq() -> None:
    couchdb = b'{"results":[\n' + ROW + b",\n" + ROW + b'\n],\n"last_seq":"6-g1B","pending":0}\n'
    pouchdb = b'{"results":[' + ROW + b'],"last_seq":2021}'
    pretty = b'{\n  "results": [\n    ' + ROW + b'\n  ],\n  "last_seq": null\n}'
    for body in (couchdb, pouchdb, pretty):
        assert _last_seq_at_end(body) == _decoded_page(body)[1]
    assert _last_seq_at_end(couchdb) == "6-g1B" and _last_seq_at_end(pretty) is None


def test_a_last_seq_inside_a_document_is_never_taken_for_the_pages() -> None:
    # the page's own last_seq first (not CouchDB's order), a document's at the end, after
    # "}]," as the page's own would be
    doc = b'{"_id":"b","x":[{}],"last_seq":99}'
    inner = b'{"seq":7,"id":"b","changes":[{"rev":"1-y"}],"doc":' + doc + b"}"
    body = b'{"last_seq":7,"results":[' + ROW + b"," + inner + b"]}"
    assert _json.loads(body)["results"][1]["doc"]["last_seq"] == 99
    assert _last_seq_at_end(body) is _UNKNOWN
    assert _decoded_page(body)[1] == 7


def test_an_empty_cut_or_foreign_page_is_decoded_before_going_on() -> None:
    empty = b'{"results":[\n\n],\n"last_seq":"9-g1C","pending":0}\n'
    cut = b'{"results":[' + ROW + b'],"last_seq":"6-g1'
    without = b'{"results":[' + ROW + b"]}"
    for body in (empty, cut, without):
        assert _last_seq_at_end(body) is _UNKNOWN
    assert _decoded_page(empty) == ([], "9-g1C")
    assert _decoded_page(without)[1] == "5-g1A"  # the last change's seq
