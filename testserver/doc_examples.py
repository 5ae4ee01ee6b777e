"""The fenced ```python blocks of Markdown pages, with their docs-test markers.

A block may be left out of the documentation's tests by an HTML comment on the line
before it: ``<!-- docs-test: skip: reason -->`` (never run) or ``<!-- docs-test:
couchdb-only: reason -->`` (skipped on pouchdb-server). tests/test_docs_examples.py runs
the blocks; tests/test_pytest_plugin.py runs the pytest page's test modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCS", "KINDS", "Block", "blocks_of"]

DOCS = Path(__file__).resolve().parent.parent / "docs"

# A fence opening at the start of a line (```python, ```py), with the comment line
# that may stand before it; the block ends at the next closing fence.
_BLOCK = re.compile(
    r"(?:^<!--\s*docs-test:\s*(?P<kind>[\w-]+)\s*:?\s*(?P<reason>.*?)\s*-->\n)?"
    r"^(?P<indent>[ \t]*)```(?:python|py)[ \t]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
KINDS = ("skip", "couchdb-only")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int
    code: str
    kind: str | None
    reason: str

    @property
    def where(self) -> str:
        """``docs/page.md:line``, for messages and tracebacks."""
        inside = self.page.is_relative_to(DOCS.parent)
        page = self.page.relative_to(DOCS.parent) if inside else self.page
        return f"{page}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The ```python (or ```py) blocks of ``page``, in order, dedented as a list item's are."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        indent = match["indent"]
        lines = match["code"].splitlines()
        code = "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in lines)
        line = text.count("\n", 0, match.start("code")) + 1
        found.append(Block(page, line, code + "\n", match["kind"], match["reason"] or ""))
    return found
