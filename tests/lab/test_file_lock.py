"""The lab's one file lock (vqual_lab.component.file_lock)."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from vqual_lab.component import file_lock


def _try_lock(path: Path) -> bool:
    """Whether another holder (a separate open file, as another process has) gets the lock."""
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
        return True


def test_the_lock_is_exclusive_while_held_and_released_after(tmp_path: Path) -> None:
    path = tmp_path / "run" / "build.lock"  # the folder does not exist yet
    with file_lock(path):
        assert path.is_file()
        assert not _try_lock(path)
    assert _try_lock(path)


def test_the_lock_is_released_when_the_body_raises(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with pytest.raises(RuntimeError), file_lock(path):
        raise RuntimeError("build failed")
    assert _try_lock(path)
