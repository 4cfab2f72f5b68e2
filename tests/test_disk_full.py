"""A disk that fills during a result or checkpoint write: one line (``<file>: disk full while writing (N MB
free); the previous file is kept``), the last good file's bytes unchanged, no temporary file left.

The full disk is simulated (the write raises OSError ENOSPC / EDQUOT) and, where /dev/full exists, real:
the bytes go to /dev/full, which fails every write with ENOSPC."""

from __future__ import annotations

import builtins
import errno
import os
import pathlib
import shutil
from collections import namedtuple

import numpy as np
import pytest
import torch

import harness.safeio as safeio
from harness.errors import HarnessError
from harness.safeio import save_npz, write_json
from harness.train.checkpoint import save_checkpoint

DEV_FULL = pathlib.Path("/dev/full")
_Usage = namedtuple("_Usage", "total used free")


@pytest.fixture
def free_3mb(monkeypatch):
    """shutil.disk_usage reports 3 MB free (the message's figure)."""
    monkeypatch.setattr(shutil, "disk_usage", lambda p: _Usage(10**9, 10**9 - 3_000_000, 3_000_000))


def _full(path, kept=True) -> str:
    return f"{path}: disk full while writing (3 MB free); " + ("the previous file is kept" if kept else
                                                                "nothing was written")


def _listing(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())  # hidden temporary files included


def _raise_enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_json_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch, free_3mb, code):
    path = tmp_path / "metrics.json"
    write_json(path, {"p1": 40.0})
    old = path.read_bytes()

    def full(self, *a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    with pytest.raises(HarnessError) as e:
        write_json(path, {"p1": 39.0})
    assert str(e.value) == _full(path)
    assert path.read_bytes() == old and _listing(tmp_path) == ["metrics.json"]


def test_a_new_file_on_a_full_disk_is_not_written(tmp_path, monkeypatch, free_3mb):
    monkeypatch.setattr(pathlib.Path, "write_text", _raise_enospc)
    with pytest.raises(HarnessError) as e:
        write_json(tmp_path / "new.json", {})
    assert str(e.value) == _full(tmp_path / "new.json", kept=False)
    assert _listing(tmp_path) == []


def test_rename_or_temp_file_on_a_full_disk(tmp_path, monkeypatch, free_3mb):
    path = tmp_path / "a.json"
    write_json(path, [1])
    old = path.read_bytes()
    with monkeypatch.context() as m:
        m.setattr(safeio.os, "replace", _raise_enospc)
        with pytest.raises(HarnessError) as e:
            write_json(path, [2])
    assert str(e.value) == _full(path)
    assert path.read_bytes() == old and _listing(tmp_path) == ["a.json"]
    monkeypatch.setattr(safeio.tempfile, "mkstemp", _raise_enospc)  # no inode left for the temporary file
    with pytest.raises(HarnessError) as e:
        write_json(path, [3])
    assert str(e.value) == _full(path)
    assert path.read_bytes() == old and _listing(tmp_path) == ["a.json"]


def test_other_os_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    path = tmp_path / "a.json"

    def denied(self, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(pathlib.Path, "write_text", denied)
    with pytest.raises(PermissionError):
        write_json(path, [1])
    assert _listing(tmp_path) == []


@pytest.mark.skipif(not DEV_FULL.exists(), reason="/dev/full is absent")
def test_npz_written_to_dev_full(tmp_path, monkeypatch, free_3mb):
    """The temporary file's bytes really go to /dev/full: the OS's own ENOSPC."""
    path = tmp_path / "data_2d_h36m_x.npz"
    save_npz(path, a=np.arange(10))
    old = path.read_bytes()

    def to_dev_full(file, mode="r", *a, **k):
        if "w" in mode and pathlib.Path(file).name.startswith(f".{path.name}."):
            return builtins.open(DEV_FULL, mode, *a, **k)
        return builtins.open(file, mode, *a, **k)

    monkeypatch.setattr(safeio, "open", to_dev_full, raising=False)
    with pytest.raises(HarnessError) as e:
        save_npz(path, a=np.arange(100_000))
    assert str(e.value) == _full(path)
    assert path.read_bytes() == old and _listing(tmp_path) == [path.name]


def _torch_full_error() -> RuntimeError:
    """The RuntimeError torch.save gives on a full disk: really from /dev/full where it exists."""
    if DEV_FULL.exists():
        try:
            torch.save({"w": torch.zeros(1000, 1000)}, str(DEV_FULL))
        except RuntimeError as e:
            return e
    return RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


@pytest.mark.parametrize("kind", ["torch-runtime-error", "os-error"])
def test_checkpoint_on_a_full_disk_keeps_the_last_good_one(tmp_path, monkeypatch, free_3mb, kind):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 0, "model": {"w": torch.ones(3)}})
    old = path.read_bytes()
    err = _torch_full_error() if kind == "torch-runtime-error" else OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_save(obj, f, *a, **k):
        pathlib.Path(f).write_bytes(b"partial")  # torch had written part of the file
        raise err

    monkeypatch.setattr(torch, "save", full_save)
    with pytest.raises(HarnessError) as e:
        save_checkpoint(path, {"epoch": 1, "model": {"w": torch.zeros(3)}})
    assert str(e.value) == _full(path)
    assert path.read_bytes() == old and _listing(tmp_path) == ["checkpoint.pt"]


def test_a_torch_write_error_with_room_left_is_not_a_full_disk(tmp_path, monkeypatch):
    """The same RuntimeError with plenty of space free is something else: raised as it is, the old file kept."""
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 0})
    old = path.read_bytes()
    err = _torch_full_error()
    monkeypatch.setattr(shutil, "disk_usage", lambda p: _Usage(10**12, 0, 10**12))

    def failing(obj, f, *a, **k):
        raise err

    monkeypatch.setattr(torch, "save", failing)
    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"epoch": 1})
    assert path.read_bytes() == old and _listing(tmp_path) == ["checkpoint.pt"]


def test_cli_prints_one_line(tmp_path, monkeypatch, free_3mb, harness_cache):
    """Through a command: ``harness data synth 3dhp`` on a full disk; one line, exit 2, nothing written."""
    from typer.testing import CliRunner

    from harness.cli import app

    monkeypatch.setattr(safeio, "open", lambda *a, **k: _raise_enospc(), raising=False)  # save_npz's writes
    out = tmp_path / "3dhp"
    r = CliRunner().invoke(app, ["data", "synth", "--benchmark", "3dhp", "--out", str(out)])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert lines == [f"error: {_full(out / 'data_test_3dhp.npz', kept=False)}"], r.output
    assert _listing(out) == []
