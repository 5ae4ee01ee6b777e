"""``python -m aiocouch.cli``: the same as the ``aiocouch`` command."""

from .main import cli

cli(prog_name="aiocouch")
