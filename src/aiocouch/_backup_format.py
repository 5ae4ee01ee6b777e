"""The backup file: JSON lines, a header, one line per revision, an end line.

Line 1 is the header ``{"aiocouch_backup": 1, "backup_id": ..., "database": ...,
"created": ...}``. Each following line is one leaf revision of a document, exactly as
``_bulk_docs`` with ``new_edits: false`` takes it back: ``_id``, ``_rev``, ``_revisions``
(its history), ``_deleted`` for a deletion, and ``_attachments`` with their bytes inline
(``data``, base64), never stubs. The last line is ``{"aiocouch_backup_end": {"revisions":
n, "documents": m}}``; a file without it is an unfinished backup. Every line ends with a
newline. The file may be gzip-compressed (one or more gzip members, one after another).

Lines are read as bytes and decoded whole, so a multi-byte UTF-8 character never falls
apart at a read boundary.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import _json
from ._answers import kind_of
from .typing import JsonDict

__all__ = [
    "FORMAT_VERSION",
    "BackupContents",
    "BackupFormatError",
    "check_revision",
    "end_line",
    "header_line",
    "is_compressed",
    "open_lines",
    "read_header",
    "scan",
]

FORMAT_VERSION = 1
_HEADER_KEY = "aiocouch_backup"
_END_KEY = "aiocouch_backup_end"
_GZIP_MAGIC = b"\x1f\x8b"
_REVISION = re.compile(r"([1-9][0-9]*)-([^\s]+)\Z")


class BackupFormatError(ValueError):
    """A backup file that is not a complete, valid backup: ``line`` says where (1-based;
    0 for the file as a whole)."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        where = f"{path}, line {line}" if line else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


@dataclass
class BackupContents:
    """What a whole valid backup file holds, as :func:`scan` found it."""

    header: JsonDict
    revisions: int = 0
    documents: int = 0
    design_lines: list[int] = field(default_factory=list)
    """The line numbers of the design documents' revisions."""


def header_line(backup_id: str, database: str) -> bytes:
    """The first line of a new backup of ``database``."""
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header = {
        _HEADER_KEY: FORMAT_VERSION,
        "backup_id": backup_id,
        "database": database,
        "created": created,
    }
    return _json.dumps(header) + b"\n"


def end_line(revisions: int, documents: int) -> bytes:
    """The last line of a finished backup."""
    return _json.dumps({_END_KEY: {"revisions": revisions, "documents": documents}}) + b"\n"


def is_compressed(path: Path) -> bool:
    """True if the file at ``path`` starts as a gzip file does."""
    with open(path, "rb") as file:
        return file.read(2) == _GZIP_MAGIC


def open_lines(path: Path) -> io.BufferedIOBase:
    """The file at ``path`` for reading lines of bytes, gzip or not (by its first bytes)."""
    if is_compressed(path):
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_header(path: Path) -> JsonDict:
    """The header of the backup at ``path`` (BackupFormatError if it has none)."""
    with open_lines(path) as file:
        try:
            first = file.readline()
        except (OSError, EOFError) as exc:
            raise BackupFormatError(path, 1, f"cannot be read ({exc})") from exc
    return _header(path, first)


def scan(path: Path) -> BackupContents:
    """Reads the whole backup at ``path`` and checks every line; writes nothing.

    Raises BackupFormatError naming the first bad line: not JSON or not UTF-8, cut
    short (no newline at its end), not a revision as the format holds it, an unknown
    header, a missing or wrong end line, or anything after it.
    """
    with open_lines(path) as file:
        numbered = enumerate(_lines(path, file), 1)
        number, first = next(numbered, (1, b""))
        contents = BackupContents(_header(path, first))
        previous_id: str | None = None
        for number, line in numbered:
            value = _decoded(path, number, line)
            if isinstance(value, dict) and _END_KEY in value:
                _check_end(path, number, value, contents)
                if next(numbered, None) is not None:
                    raise BackupFormatError(path, number + 1, "a line after the end line")
                return contents
            doc_id = check_revision(path, number, value)
            contents.revisions += 1
            if doc_id != previous_id:
                contents.documents += 1
                previous_id = doc_id
            if doc_id.startswith("_design/"):
                contents.design_lines.append(number)
    raise BackupFormatError(
        path, number + 1, "the end line is missing: the backup is unfinished or cut short"
    )


def _lines(path: Path, file: io.BufferedIOBase) -> Iterator[bytes]:
    """The lines of ``file``; a broken gzip stream raises BackupFormatError."""
    number = 0
    try:
        for number, line in enumerate(file, 1):  # noqa: B007 - used after the loop
            yield line
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BackupFormatError(path, number + 1, f"cannot be read ({exc})") from exc


def _decoded(path: Path, number: int, line: bytes) -> Any:
    """The JSON value of a whole line, which must end with a newline."""
    if not line.endswith(b"\n"):
        raise BackupFormatError(path, number, "the line is cut short (no newline at its end)")
    try:
        return _json.loads(line)
    except ValueError as exc:
        problem = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "not JSON"
        raise BackupFormatError(path, number, f"{problem} ({exc})") from exc


def _header(path: Path, line: bytes) -> JsonDict:
    if not line:
        raise BackupFormatError(path, 1, "the file is empty, not a backup")
    value = _decoded(path, 1, line)
    if not isinstance(value, dict) or _HEADER_KEY not in value:
        raise BackupFormatError(path, 1, f"not an aiocouch backup (no '{_HEADER_KEY}' header)")
    if value[_HEADER_KEY] != FORMAT_VERSION:
        raise BackupFormatError(
            path, 1, f"backup format {value[_HEADER_KEY]!r}, this version reads {FORMAT_VERSION}"
        )
    if not isinstance(value.get("backup_id"), str) or not isinstance(value.get("database"), str):
        raise BackupFormatError(path, 1, "the header lacks its 'backup_id' or 'database'")
    return value


def _check_end(path: Path, number: int, value: JsonDict, contents: BackupContents) -> None:
    counts = value[_END_KEY]
    if not isinstance(counts, dict) or counts.get("revisions") != contents.revisions:
        expected = counts.get("revisions") if isinstance(counts, dict) else counts
        raise BackupFormatError(
            path,
            number,
            f"the end line counts {expected!r} revisions, the file holds {contents.revisions}",
        )


def check_revision(path: Path, number: int, value: Any) -> str:
    """The ``_id`` of ``value``, if it is a revision as the format holds it."""

    def bad(problem: str) -> BackupFormatError:
        return BackupFormatError(path, number, problem)

    if not isinstance(value, dict):
        raise bad(f"a revision must be a JSON object, not {kind_of(value)}")
    doc_id, rev = value.get("_id"), value.get("_rev")
    if not isinstance(doc_id, str) or not doc_id:
        raise bad("the revision has no '_id'")
    match = _REVISION.match(rev) if isinstance(rev, str) else None
    if match is None:
        raise bad(f"document {doc_id!r} has no valid '_rev' ({rev!r})")
    history = value.get("_revisions")
    if (
        not isinstance(history, dict)
        or history.get("start") != int(match[1])
        or not isinstance(history.get("ids"), list)
        or not history["ids"]
        or history["ids"][0] != match[2]
        or not all(isinstance(id, str) for id in history["ids"])
    ):
        raise bad(f"document {doc_id!r}: '_revisions' is not the history of {rev!r}")
    if "_deleted" in value and not isinstance(value["_deleted"], bool):
        raise bad(f"document {doc_id!r}: '_deleted' is not true or false")
    attachments = value.get("_attachments", {})
    if not isinstance(attachments, dict):
        raise bad(f"document {doc_id!r}: '_attachments' is not an object")
    for name, attachment in attachments.items():
        _check_attachment(doc_id, name, attachment, bad)
    return doc_id


def _check_attachment(doc_id: str, name: str, attachment: Any, bad: Any) -> None:
    if not isinstance(attachment, dict):
        raise bad(f"document {doc_id!r}: attachment {name!r} is not an object")
    data = attachment.get("data")
    if not isinstance(data, str) or attachment.get("stub"):
        raise bad(f"document {doc_id!r}: attachment {name!r} has no bytes (a stub)")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad(f"document {doc_id!r}: attachment {name!r} is not base64 ({exc})") from exc
