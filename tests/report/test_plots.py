"""The figures beside the tables: PNGs that are deterministic (no version or date stamped), the
pose figure from a run's sample arrays, skipped for runs that lack them."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is needed for the figures (tables work without it)")

from harness.report import plots as P  # noqa: E402
from harness.report import tables as T  # noqa: E402
from harness.errors import DataError  # noqa: E402
from tests.report.test_tables import _hp_run, frame, h36m_run  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == PNG_MAGIC
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        out.append((kind, body))
        pos += 12 + length
    return out


def png_size(data: bytes) -> tuple[int, int]:
    ihdr = dict(png_chunks(data))[b"IHDR"]
    return struct.unpack(">II", ihdr[:8])


@pytest.fixture()
def df() -> pd.DataFrame:
    return frame(h36m_run("baseline", "gaussian", 0, 50, 60, name="run-a"),
                 h36m_run("baseline", "gaussian", 1, 52, 64, name="run-b"),
                 h36m_run("full", "gmm", 0, 45, 60, name="run-c"))


def write_samples(run_dir: Path, n: int = 8, with_samples: bool = True, frames: int = 40) -> Path:
    """A per_frame.npz as the engine writes it (sample poses: 2D normalised, 3D in metres)."""
    rng = np.random.default_rng(0)
    run_dir.mkdir(parents=True, exist_ok=True)
    pick = np.linspace(0, frames - 1, n).astype(np.int64)
    gt = rng.normal(0, 0.3, (n, 17, 3)).astype(np.float32)
    arrays = {"diffusion_p1": np.arange(frames, dtype=np.float32) + 10.0,
              "action": np.array(["Walking"] * frames), "frame": np.arange(frames)}
    if with_samples:
        arrays.update(sample_index=pick, sample_pose_2d=rng.normal(0, 0.3, (n, 17, 2)).astype(np.float32),
                      sample_gt_3d=gt, sample_lifter_3d=gt + 0.02, sample_diffusion_3d=gt + 0.01)
    np.savez_compressed(run_dir / "per_frame.npz", **arrays)
    return run_dir


def test_bar_chart_png_is_deterministic_and_unstamped(df, tmp_path):
    a = P.plot_h36m_by_action(df, tmp_path / "a.png")
    b = P.plot_h36m_by_action(df, tmp_path / "b.png")
    data = a.read_bytes()
    assert data == b.read_bytes()
    kinds = [k for k, _ in png_chunks(data)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert not {b"tEXt", b"iTXt", b"zTXt", b"tIME"} & set(kinds)  # no Software / date stamp
    assert png_size(data) == (1300, 380)  # 13 x (3.4 + 0.4) inches at 100 dpi
    assert len(data) < 120_000


def test_bar_chart_one_panel_per_setting(df, tmp_path):
    cpn = frame(h36m_run("baseline", "gaussian", 0, 50, 60, keypoints="cpn_ft_h36m_dbb", synthetic=False, name="c"))
    p = P.plot_h36m_by_action(pd.concat([df, cpn]), tmp_path / "two.png")
    assert png_size(p.read_bytes()) == (1300, 720)
    with pytest.raises(DataError, match="no Human3.6M runs"):
        P.plot_h36m_by_action(frame(_hp_run("full", "gmm", 0, 88.0, 53.0, 70.0)), tmp_path / "x.png")


def test_pick_pose_run_prefers_best_run_with_samples(df, tmp_path):
    runs = tmp_path / "runs"
    assert P.pick_pose_run(df, runs) is None
    write_samples(runs / "run-a")                      # P1 Avg 57
    write_samples(runs / "run-c", with_samples=False)  # P1 Avg 52, the best, but an older run without samples
    assert P.pick_pose_run(df, runs) == runs / "run-a"
    write_samples(runs / "run-c")
    assert P.pick_pose_run(df, runs) == runs / "run-c"
    (runs / "run-c" / "per_frame.npz").write_bytes(b"not a zip")
    assert P.pick_pose_run(df, runs) == runs / "run-a"


def test_poses_figure(tmp_path):
    run = write_samples(tmp_path / "h36m-full-gmm-seed0-abc")
    p = P.plot_poses(run, tmp_path / "poses.png")
    data = p.read_bytes()
    assert data[:8] == PNG_MAGIC and png_size(data) == (900, 620)  # 3 poses x 3.0 in, 6.2 in
    assert data == P.plot_poses(run, tmp_path / "again.png").read_bytes()
    assert not {b"tEXt", b"iTXt", b"tIME"} & {k for k, _ in png_chunks(data)}
    # An older run without the sample arrays: skipped, nothing written.
    old = write_samples(tmp_path / "old", with_samples=False)
    assert P.plot_poses(old, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    assert P.plot_poses(tmp_path / "missing", tmp_path / "none.png") is None


def test_poses_wrong_shapes_are_a_data_error(tmp_path):
    run = tmp_path / "bad"
    run.mkdir()
    # 17 joints or 16 (H36M less Neck/Nose, tests/test_sixteen_joints.py) are drawn; 15 is not a layout
    np.savez(run / "per_frame.npz", sample_pose_2d=np.zeros((8, 15, 2)), sample_gt_3d=np.zeros((8, 15, 3)),
             sample_diffusion_3d=np.zeros((8, 15, 3)))
    with pytest.raises(DataError, match="sample arrays have shapes"):
        P.plot_poses(run, tmp_path / "p.png")


def test_write_tables_with_runs_dir(df, tmp_path):
    runs = tmp_path / "runs"
    write_samples(runs / "run-c")
    paths = T.write_tables(df, tmp_path / "out", runs_dir=runs)
    assert [p.name for p in paths][-2:] == ["h36m_p1_by_action.png", "poses.png"]
    # Runs without sample arrays: the tables and the bar chart, no pose figure.
    paths = T.write_tables(df, tmp_path / "out2", runs_dir=tmp_path / "empty")
    assert "poses.png" not in [p.name for p in paths] and paths[-1].name == "h36m_p1_by_action.png"
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == sorted(p.name for p in paths)
