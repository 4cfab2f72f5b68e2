"""harness.identity: run identity = config less paths + data content + numerics (issue 12).

Pinned: path spelling does not change a run's name; a changed data byte or other numerics does; a
finished run under other data is reported, kept, and not "done"; a resume under other numerics is
refused in one line; metrics.json says which path ran."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from harness.config import resolve_config
from harness.data.synth import synth_h36m
from harness.errors import HarnessError
from harness.identity import data_fingerprint, differences, numerics, run_identity
from harness.models.fast import native, ops
from harness.runs import is_done, lifter_dir, run_name, stale_note

TINY = dict(train_stride=40, test_stride=40, lifter_hid_dim=16, lifter_layers=1, lifter_heads=2, lifter_epochs=1,
            hid_dim=16, num_layers=1, n_head=2, epochs=1, batch_size=128, lifter_batch_size=128, device="cpu",
            variant="baseline", noise="gaussian")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, harness_cache):
    root = tmp_path_factory.mktemp("spell") / "data"
    synth_h36m(root / "h36m", seed=0)
    return root


def _cfg(**kw):
    return resolve_config("smoke", dict(TINY, **kw))


def test_path_spelling_does_not_change_the_run(data_root, tmp_path, monkeypatch):
    absolute = _cfg(data_root=str(data_root))
    os.symlink(data_root, tmp_path / "link")
    monkeypatch.chdir(data_root.parent)
    relative = _cfg(data_root="data")
    linked = _cfg(data_root=str(tmp_path / "link"))
    inner = _cfg(data_root=str(data_root / "h36m"))  # the benchmark's own folder
    names = {run_name(c) for c in (absolute, relative, linked, inner)}
    assert len(names) == 1
    assert {lifter_dir(c, tmp_path).name for c in (absolute, relative, linked, inner)} == {
        lifter_dir(absolute, tmp_path).name}
    assert absolute.hash() != relative.hash()  # the config alone still spells the path
    fp = data_fingerprint(absolute)
    assert sorted(fp) == ["h36m/cameras.h5", "h36m/data_3d_h36m.npz"] and all(len(v) == 64 for v in fp.values())


def test_a_changed_data_file_is_another_run(data_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(data_root, root)
    cfg = _cfg(data_root=str(root))
    before = run_identity(cfg)
    path = root / "h36m" / "data_3d_h36m.npz"
    raw = bytearray(path.read_bytes())
    raw[-30] ^= 0xFF  # one byte of the zip's directory: content changed, file still the same size
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(1, 1))
    after = run_identity(cfg)
    assert after["config_hash"] == before["config_hash"]
    assert after["data"]["h36m/data_3d_h36m.npz"] != before["data"]["h36m/data_3d_h36m.npz"]
    assert after["data"]["h36m/cameras.h5"] == before["data"]["h36m/cameras.h5"]
    assert run_name(cfg, after) != run_name(cfg, before)
    assert differences(before, after) == "data (h36m/data_3d_h36m.npz changed)"


def test_kernels_on_and_off_are_different_runs(monkeypatch):
    if native.lib() is None:
        pytest.skip(f"the C++ kernels are unavailable here: {native.error()}")
    cfg = _cfg()
    on = run_identity(cfg)
    monkeypatch.setattr(ops, "NATIVE", False)
    off = run_identity(cfg)
    assert on["numerics"] == {"device": "cpu", "precision": "fp32", "kernels": "native"}
    assert off["numerics"] == {"device": "cpu", "precision": "fp32", "kernels": "torch"}
    assert run_name(cfg, on) != run_name(cfg, off)
    assert numerics(cfg.replace(precision="bf16"))["kernels"] == "torch"  # the kernels are fp32 only
    assert differences(on, off) == "numerics (kernels native -> torch)"


@pytest.mark.skipif(native.lib() is None, reason="the C++ kernels are unavailable here")
def test_runs_under_both_paths_record_it_and_a_resume_refuses_other_numerics(tmp_path, monkeypatch):
    """Smoke runs with the kernels on and off: two folders, two sets of numbers, metrics.json naming the
    path; then a checkpoint written with the kernels on is not resumed with them off."""
    from harness.pipeline import run

    cfg = _cfg()
    notes = []
    on = run(cfg, tmp_path)
    monkeypatch.setattr(ops, "NATIVE", False)
    off = run(cfg, tmp_path, progress=lambda ev: notes.append(ev.get("text")) if ev.get("stage") == "note" else None)
    assert on != off
    m_on, m_off = (json.loads((d / "metrics.json").read_text()) for d in (on, off))
    assert m_on["identity"]["numerics"]["kernels"] == "native" and m_off["identity"]["numerics"]["kernels"] == "torch"
    assert m_on["metrics"]["diffusion"]["p1"]["Avg"] != m_off["metrics"]["diffusion"]["p1"]["Avg"]
    assert notes == [f"{on}: the same config finished with other numerics (kernels native -> torch); "
                     f"kept as it is, this run is {off.name}"]
    assert is_done(cfg, tmp_path) and stale_note(cfg, tmp_path) is not None
    # A checkpoint from the kernels-on run, found where a kernels-off run of 2 epochs resumes
    cfg2 = cfg.replace(epochs=2)
    target = tmp_path / "r" / run_name(cfg2)
    target.mkdir(parents=True)
    shutil.copy(on / "checkpoint.pt", target / "checkpoint.pt")
    with pytest.raises(HarnessError) as e:
        run(cfg2, tmp_path / "r")
    assert str(e.value) == (f"{target / 'checkpoint.pt'}: written under other numerics (kernels native; this "
                            "process has kernels torch); refusing to resume it: move the folder away, or run with "
                            "the numerics it was written with")
    assert not (target / "metrics.json").exists()


def test_is_done_needs_the_recorded_identity(tmp_path):
    cfg = _cfg()
    run_dir = tmp_path / run_name(cfg)
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps({"config": cfg.to_dict(), "metrics": {}}))
    assert not is_done(cfg, tmp_path)  # no identity: from before identities, or written by hand
    ident = run_identity(cfg)
    (run_dir / "metrics.json").write_text(json.dumps({"identity": ident, "metrics": {}}))
    assert is_done(cfg, tmp_path)
    tampered = {**ident, "data": {k: "0" * 64 for k in ident["data"]}}
    (run_dir / "metrics.json").write_text(json.dumps({"identity": tampered, "metrics": {}}))
    assert not is_done(cfg, tmp_path)
    np.testing.assert_equal(sorted(ident), ["config", "config_hash", "data", "numerics"])
