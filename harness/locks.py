"""Advisory per-folder locks (``fcntl.flock``): released by the OS when the holder dies, even by SIGKILL,
so a crashed run never leaves a stale lock behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator


class Busy(Exception):
    """The lock is held by another process."""


@contextlib.contextmanager
def folder_lock(folder: Path, blocking: bool = True) -> Iterator[None]:
    """A lock on ``folder`` (created if missing), held in ``folder/.lock``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / ".lock", blocking=blocking):
        yield


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[None]:
    """A lock held on the file ``path`` (created if missing; its parent must exist). Raises
    :class:`Busy` with ``blocking=False`` when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy(str(Path(path).parent)) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
