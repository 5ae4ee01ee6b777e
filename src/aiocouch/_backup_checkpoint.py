"""Checkpoints beside a backup file: how far a backup or a restore got.

A checkpoint is a small JSON object in its own file, replaced whole (written to a
temporary file, then renamed over it), so an interruption at any moment leaves either
the old or the new one. ``FILE.checkpoint`` belongs to the backup being written to FILE,
``FILE.restore-checkpoint`` to a restore from FILE.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import _json
from .typing import JsonDict

__all__ = ["backup_checkpoint_path", "load", "remove", "restore_checkpoint_path", "save"]


def backup_checkpoint_path(path: Path) -> Path:
    """Where the checkpoint of a backup into ``path`` is kept."""
    return path.with_name(path.name + ".checkpoint")


def restore_checkpoint_path(path: Path) -> Path:
    """Where the checkpoint of a restore from ``path`` is kept."""
    return path.with_name(path.name + ".restore-checkpoint")


def load(path: Path) -> JsonDict | None:
    """The checkpoint at ``path``, None if there is none; ValueError if it is not one."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        value: Any = _json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path} is not a checkpoint ({exc}); delete it to start over") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{path} is not a checkpoint; delete it to start over")
    return value


def save(path: Path, checkpoint: JsonDict) -> None:
    """Replaces the checkpoint at ``path`` with ``checkpoint``, durably."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        file.write(_json.dumps(checkpoint))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def remove(path: Path) -> None:
    """Deletes the checkpoint at ``path``, if there is one."""
    path.unlink(missing_ok=True)
