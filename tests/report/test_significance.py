"""Pinned tests for harness.report.significance (the paired, stratified clip bootstrap).

Inputs are tiny hand-built per-frame error arrays whose answers are known: a constant difference gives
a zero-width interval at exactly that value; two clips of differences -1 and +1 give exactly [-1, +1]
(each tail holds a quarter of the replicates); frame counts weigh a clip as the protocol weighs its
frames; the point estimate is harness.metrics' per-action aggregate of the differences."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from harness import metrics as M
from harness.cli import app
from harness.errors import DataError
from harness.evaluate import mpi3dhp_per_frame
from harness.protocols import action_name
from harness.report import significance as S
from harness.report import tables as T
from harness.report.check import run_metric_keys
from harness.report.results import collect
from harness.safeio import save_npz, write_json

B = 2000  # replicates where the answer does not depend on their number


# ------------------------------------------------------------------------------------------ helpers
def h36m_frames(spec):
    """Frame arrays of clips ``[(subject, sequence, camera, frames), ...]`` (H36M naming)."""
    cols = {k: [] for k in ("subject", "action", "sequence", "camera", "frame")}
    for subject, seq, cam, n in spec:
        cols["subject"] += [subject] * n
        cols["sequence"] += [seq] * n
        cols["action"] += [action_name(seq)] * n
        cols["camera"] += [cam] * n
        cols["frame"] += list(range(n))
    out = {k: np.asarray(v) for k, v in cols.items()}
    out["camera"] = out["camera"].astype(np.int16)
    out["frame"] = out["frame"].astype(np.int32)
    out["valid"] = np.ones(len(out["frame"]), bool)
    return out


def with_errors(frames, p1, p2=None, lifter=None):
    p1 = np.asarray(p1, np.float32)
    out = {**frames, "diffusion_p1": p1, "diffusion_p2": np.asarray(p1 if p2 is None else p2, np.float32)}
    lf = np.asarray(p1 if lifter is None else lifter, np.float32)
    out.update(lifter_p1=lf, lifter_p2=lf)
    return out


def clips(arrays, bench="h36m", source="run"):
    return S.clip_table(bench, arrays, source)


def make_run(root, name, variant, seed, arrays, *, bench="h36m", noise="gaussian", per_frame=True, record=False):
    """A run folder as `harness train` writes it: metrics.json (valid for collect) and per_frame.npz."""
    d = root / name
    d.mkdir(parents=True)
    metrics = {}
    for model in ("diffusion", "lifter"):
        metrics[model] = {p: M.h36m_per_action(arrays[f"{model}_{p}"], arrays["action"]) for p in ("p1", "p2")}
    result = {"run": name, "config": {"benchmark": bench, "variant": variant, "noise": noise, "seed": seed,
                                      "profile": "quick", "keypoints": "gt", "data_root": None},
              "data": {"synthetic": True}, "date": "2026-01-01T00:00:00+00:00", "wall_time_s": 1.0,
              "metrics": metrics}
    if record:
        result["clips"] = S.clip_record(bench, arrays)
    write_json(d / "metrics.json", result)
    if per_frame:
        save_npz(d / "per_frame.npz", **arrays)
    return d


# Two actions (Walking with two sequences), two cameras: 6 clips of unequal lengths.
SPEC = [("S9", "Walking 1", 0, 3), ("S9", "Walking 1", 1, 2), ("S9", "Walking", 0, 4), ("S11", "Eating", 0, 2),
        ("S11", "Eating", 1, 5), ("S9", "Eating 2", 0, 1)]


# ---------------------------------------------------------------------------------------------- clips
def test_h36m_clips_are_subject_sequence_camera_stratified_by_action():
    fr = h36m_frames(SPEC)
    c = clips(with_errors(fr, np.arange(17)))
    assert c.keys == ["S11|Eating|0", "S11|Eating|1", "S9|Eating 2|0", "S9|Walking|0", "S9|Walking 1|0",
                      "S9|Walking 1|1"]
    assert c.strata.tolist() == ["Eating", "Eating", "Eating", "Walking", "Walking", "Walking"]
    assert c.n.tolist() == [2, 5, 1, 4, 3, 2]
    # frames 0..16 in SPEC order: clip sums of the values 0..16
    assert c.sums["diffusion_p1"].tolist() == [9 + 10, 11 + 12 + 13 + 14 + 15, 16, 5 + 6 + 7 + 8, 0 + 1 + 2, 3 + 4]
    assert c.metrics() == ["P1", "P2"]


def test_3dhp_clips_are_fixed_segments_of_valid_frames_stratified_by_sequence():
    n5, n6 = 120, 60
    fr = {"subject": np.array(["TS5"] * n5 + ["TS6"] * n6), "action": np.array(["Outdoor"] * (n5 + n6)),
          "sequence": np.array(["TS5"] * n5 + ["TS6"] * n6), "camera": np.zeros(n5 + n6, np.int16),
          "frame": np.r_[np.arange(n5), np.arange(n6)].astype(np.int32), "valid": np.ones(n5 + n6, bool)}
    fr["valid"][50:100] = False  # TS5's second segment has no valid frame: left out
    fr["valid"][100:110] = False
    c = clips({**fr, "diffusion_p1": np.ones(n5 + n6, np.float32)}, "3dhp")
    assert S.SEGMENT_FRAMES == 50
    assert c.keys == ["TS5|0", "TS5|2", "TS6|0", "TS6|1"]
    assert c.n.tolist() == [50, 10, 50, 10]
    assert c.strata.tolist() == ["TS5", "TS5", "TS6", "TS6"]
    assert c.metrics() == ["MPJPE17"]


# ----------------------------------------------------------------------------------- pinned intervals
def test_constant_difference_gives_a_zero_width_interval_at_that_value():
    fr = h36m_frames(SPEC)
    a = np.arange(17) * 0.25 + 40.0
    iv = S.paired_intervals([clips(with_errors(fr, a, a + 3.0))], [clips(with_errors(fr, a + 0.5, a + 3.0))],
                            n_boot=B)
    p1, p2 = iv
    assert (p1.metric, p1.delta, p1.lo, p1.hi, p1.significant) == ("P1", 0.5, 0.5, 0.5, True)
    assert (p2.metric, p2.delta, p2.lo, p2.hi, p2.significant) == ("P2", 0.0, 0.0, 0.0, False)
    assert p1.a == M.h36m_per_action(a, fr["action"])["Avg"] == 42.0625  # Walking 41, Eating 43.125
    assert p1.b == 42.5625
    assert (p1.n_clips, p1.n_seeds, p1.n_boot) == (6, 1, B)
    assert p1.method == ("paired bootstrap over 6 clips (subject x sequence x camera), stratified by action, "
                         f"one seed, B={B}, percentile")


def test_symmetric_differences_give_exactly_minus_one_to_one():
    # One action, two one-frame clips differing by -1 and +1: a replicate's mean is -1, 0 or +1 with
    # probabilities 1/4, 1/2, 1/4, so the 2.5th and 97.5th percentiles are exactly -1 and +1.
    fr = h36m_frames([("S9", "Walking 1", 0, 1), ("S9", "Walking 1", 1, 1)])
    (iv, _) = S.paired_intervals([clips(with_errors(fr, [10, 10]))], [clips(with_errors(fr, [9, 11]))])
    assert (iv.delta, iv.lo, iv.hi, iv.significant) == (0.0, -1.0, 1.0, False)


def test_clips_weigh_by_their_frames():
    # One action; clip 1: 1 frame, no change; clip 2: 3 frames, +1 each. Δ = 3/4 (frames weigh, not
    # clips); the replicates are 0, 3/4 or 1, so the interval is [0, 1] and contains 0.
    fr = h36m_frames([("S9", "Walking 1", 0, 1), ("S9", "Walking 1", 1, 3)])
    a, b = clips(with_errors(fr, [5, 5, 5, 5])), clips(with_errors(fr, [5, 6, 6, 6]))
    d = b.values("P1") - a.values("P1")
    reps = S.bootstrap(d, a.n, a.strata, "h36m", n_boot=B, seed=3)
    assert set(np.unique(reps).tolist()) == {0.0, 0.75, 1.0}
    (iv, _) = S.paired_intervals([a], [b], n_boot=B)
    assert (iv.delta, iv.lo, iv.hi, iv.significant) == (0.75, 0.0, 1.0, False)


def test_resampling_is_stratified_by_action():
    # One clip per action: each replicate draws every action's only clip, so the interval has no width
    # although the actions' differences (1, 2, 6) differ; unstratified it would not be so.
    fr = h36m_frames([("S9", "Walking 1", 0, 2), ("S9", "Eating 1", 0, 1), ("S9", "Posing 1", 0, 3)])
    a = np.zeros(6)
    (iv, _) = S.paired_intervals([clips(with_errors(fr, a))], [clips(with_errors(fr, [1, 1, 2, 6, 6, 6]))])
    assert (iv.delta, iv.lo, iv.hi) == (3.0, 3.0, 3.0)


def test_point_estimate_is_the_protocols_per_action_aggregate_of_the_differences():
    rng = np.random.default_rng(7)
    spec = [(s, q, c, int(rng.integers(1, 9))) for s in ("S9", "S11") for q in ("Walking 1", "Walking", "Eating 2",
                                                                                "Phoning 1") for c in (0, 1, 2)]
    fr = h36m_frames(spec)
    n = len(fr["frame"])
    a = (50 + 10 * rng.random(n)).astype(np.float32)
    b = (a + rng.normal(-0.5, 2.0, n)).astype(np.float32)
    (iv, _) = S.paired_intervals([clips(with_errors(fr, a))], [clips(with_errors(fr, b))], n_boot=B)
    want = M.h36m_per_action(b.astype(np.float64) - a, fr["action"])["Avg"]
    assert math.isclose(iv.delta, want, rel_tol=1e-12)
    assert math.isclose(iv.a, M.h36m_per_action(a, fr["action"])["Avg"], rel_tol=1e-12)
    assert math.isclose(iv.b - iv.a, want, rel_tol=1e-10)
    assert abs(want - float(np.mean(b.astype(np.float64) - a))) > 1e-3  # not the mean over frames
    assert iv.lo < iv.delta < iv.hi and iv.n_clips == 24


def test_the_interval_is_the_percentile_interval_of_the_seeded_replicates():
    fr = h36m_frames(SPEC)
    a, b = np.zeros(17), np.r_[np.arange(9), -np.arange(8)] * 0.1
    ca, cb = clips(with_errors(fr, a)), clips(with_errors(fr, b))
    reps = S.bootstrap(cb.values("P1") - ca.values("P1"), ca.n, ca.strata, "h36m", n_boot=500, seed=11)
    (iv, _) = S.paired_intervals([ca], [cb], n_boot=500, seed=11)
    assert (iv.lo, iv.hi) == tuple(np.percentile(reps, [2.5, 97.5]))
    again = S.paired_intervals([ca], [cb], n_boot=500, seed=11)[0]
    assert (again.lo, again.hi) == (iv.lo, iv.hi)


def test_seeds_pair_and_their_per_clip_differences_are_averaged():
    fr = h36m_frames(SPEC)
    a0, a1 = np.full(17, 40.0), np.full(17, 42.0)
    ivs = S.paired_intervals([clips(with_errors(fr, a0)), clips(with_errors(fr, a1))],
                             [clips(with_errors(fr, a0 + 0.5)), clips(with_errors(fr, a1 + 1.5))], n_boot=B)
    iv = ivs[0]
    assert (iv.a, iv.b, iv.delta, iv.lo, iv.hi, iv.n_seeds) == (41.0, 42.0, 1.0, 1.0, 1.0, 2)
    assert "seed-averaged over 2 seeds" in iv.method


def test_3dhp_statistic_is_pooled_over_valid_frames_as_the_summary():
    rng = np.random.default_rng(3)
    n = 130
    gt = rng.normal(0, 300, (n, 17, 3))
    gt[:, 0] = 0
    pa = gt + rng.normal(0, 60, gt.shape)
    pb = gt + rng.normal(0, 55, gt.shape)
    seq = np.array(["TS1"] * 70 + ["TS5"] * 60)
    valid = rng.random(n) > 0.3
    fr = {"subject": seq, "action": seq, "sequence": seq, "camera": np.zeros(n, np.int16),
          "frame": np.r_[np.arange(70), np.arange(60)].astype(np.int32), "valid": valid}

    def arrays(pred):
        m14, pck = mpi3dhp_per_frame(pred, gt)
        return {**fr, "diffusion_p1": M.mpjpe_per_frame(pred, gt).astype(np.float32),
                "diffusion_mpjpe14": m14, "diffusion_pck14": pck}

    ivs = {iv.metric: iv for iv in S.paired_intervals([clips(arrays(pa), "3dhp")], [clips(arrays(pb), "3dhp")],
                                                      n_boot=B)}
    assert list(ivs) == ["MPJPE", "PCK", "MPJPE17"]
    sa, sb = M.mpi3dhp_summary(pa, gt, seq, valid)["All"], M.mpi3dhp_summary(pb, gt, seq, valid)["All"]
    for metric in ivs:
        assert math.isclose(ivs[metric].a, sa[metric], rel_tol=1e-6)
        assert math.isclose(ivs[metric].delta, sb[metric] - sa[metric], rel_tol=1e-5, abs_tol=1e-5)
    assert ivs["MPJPE"].method == ("paired bootstrap over 4 clips (50-frame segments of each sequence, valid "
                                   f"frames), stratified by sequence, one seed, B={B}, percentile")


# ------------------------------------------------------------------------------------ refusals
def test_runs_on_other_frames_are_not_paired(tmp_path):
    fr = h36m_frames(SPEC)
    a = make_run(tmp_path, "a", "baseline", 0, with_errors(fr, np.zeros(17)))
    other = {k: v.copy() for k, v in fr.items()}
    other["frame"][[3, 4]] = other["frame"][[4, 3]]  # same clips and counts, two frames swapped
    b = make_run(tmp_path, "b", "cce", 0, with_errors(other, np.ones(17)))
    with pytest.raises(DataError) as e:
        S.compare_runs([a], [b])
    msg = str(e.value)
    assert str(a / "per_frame.npz") in msg and str(b / "per_frame.npz") in msg and "\n" not in msg
    assert "'frame' arrays differ (2 frames, first at frame 3: 0 and 1)" in msg
    short = make_run(tmp_path, "c", "cce", 0, with_errors(h36m_frames(SPEC[:-1]), np.ones(16)))
    with pytest.raises(DataError, match="17 and 16 test frames"):
        S.compare_runs([a], [short])
    # from the metrics.json records alone: the fingerprint tells
    ra = make_run(tmp_path, "ra", "baseline", 0, with_errors(fr, np.zeros(17)), per_frame=False, record=True)
    rb = make_run(tmp_path, "rb", "cce", 0, with_errors(other, np.ones(17)), per_frame=False, record=True)
    with pytest.raises(DataError, match=r"ra/metrics.json and .*rb/metrics.json are not paired: their test "
                                        r"frames differ \(frames_sha256\)"):
        S.compare_runs([ra], [rb])


def test_seed_sets_must_match(tmp_path):
    fr = h36m_frames(SPEC)
    runs = {(v, s): make_run(tmp_path, f"{v}{s}", v, s, with_errors(fr, np.full(17, s + (v == "cce"))))
            for v in ("baseline", "cce") for s in (0, 1, 2)}
    with pytest.raises(DataError, match=r"the sides' seeds differ \(A: 0, 1; B: 0, 2\)"):
        S.compare_runs([runs["baseline", 0], runs["baseline", 1]], [runs["cce", 0], runs["cce", 2]])
    r = S.compare_runs([runs["baseline", 1], runs["baseline", 0]], [runs["cce", 0], runs["cce", 1]], n_boot=B)
    assert r["seeds"] == [[0, 1], [0, 1]] and r["intervals"][0]["delta"] == 1.0


# ------------------------------------------------------------------------------ metrics.json record
def test_the_metrics_json_record_gives_the_same_intervals_and_collect_ignores_it(tmp_path):
    fr = h36m_frames(SPEC)
    rng = np.random.default_rng(0)
    ea, eb = rng.random(17) * 10 + 40, rng.random(17) * 10 + 39
    npz = S.compare_runs([make_run(tmp_path / "f", "a", "baseline", 0, with_errors(fr, ea))],
                         [make_run(tmp_path / "f", "b", "cce", 0, with_errors(fr, eb))], n_boot=B)
    rec = S.compare_runs([make_run(tmp_path / "r", "a", "baseline", 0, with_errors(fr, ea), per_frame=False,
                                   record=True)],
                         [make_run(tmp_path / "r", "b", "cce", 0, with_errors(fr, eb), per_frame=False,
                                   record=True)], n_boot=B)
    for x, y in zip(npz["intervals"], rec["intervals"]):
        assert x["method"] == y["method"] and x["significant"] == y["significant"]
        for k in ("a", "b", "delta", "lo", "hi"):
            assert math.isclose(x[k], y[k], rel_tol=1e-12)
    record = json.loads((tmp_path / "r" / "a" / "metrics.json").read_text())["clips"]
    assert record["n"] == [2, 5, 1, 4, 3, 2] and sorted(record["sums"]) == ["diffusion_p1", "diffusion_p2",
                                                                            "lifter_p1", "lifter_p2"]
    with_rec, without = collect(tmp_path / "r"), collect(tmp_path / "f")
    assert with_rec.drop(columns="run").equals(without.drop(columns="run"))
    assert run_metric_keys(with_rec) == run_metric_keys(without)


def test_a_broken_record_is_one_line(tmp_path):
    fr = h36m_frames(SPEC)
    d = make_run(tmp_path, "a", "baseline", 0, with_errors(fr, np.zeros(17)), per_frame=False, record=True)
    m = json.loads((d / "metrics.json").read_text())
    m["clips"]["sums"]["diffusion_p1"] = m["clips"]["sums"]["diffusion_p1"][:-1]
    write_json(d / "metrics.json", m)
    with pytest.raises(DataError, match=r"a/metrics.json: 'clips' sums.diffusion_p1 must be a list of 6 numbers"):
        S.load_clips(d)


# ----------------------------------------------------------------------------------- the ablation
def _grid(tmp_path, cce_per_frame=True):
    fr = h36m_frames(SPEC)
    base = np.arange(17) * 0.5 + 50
    make_run(tmp_path, "b0", "baseline", 0, with_errors(fr, base, base - 10))
    make_run(tmp_path, "c0", "cce", 0, with_errors(fr, base - 0.5, base - 10), per_frame=cce_per_frame)
    make_run(tmp_path, "f0", "full", 0, with_errors(fr, base + 0.25, base - 10.75))
    return collect(tmp_path)


def test_ablation_intervals_rows(tmp_path):
    df = _grid(tmp_path)
    out = S.ablation_intervals(df, tmp_path, n_boot=B)
    assert list(out.columns) == S.INTERVAL_COLUMNS
    got = out[["benchmark", "variant", "noise", "metric", "delta", "lo", "hi", "significant", "n_clips",
               "n_seeds"]].values.tolist()
    assert got == [["h36m", "cce", "gaussian", "P1", -0.5, -0.5, -0.5, True, 6, 1],
                   ["h36m", "cce", "gaussian", "P2", 0.0, 0.0, 0.0, False, 6, 1],
                   ["h36m", "full", "gaussian", "P1", 0.25, 0.25, 0.25, True, 6, 1],
                   ["h36m", "full", "gaussian", "P2", -0.75, -0.75, -0.75, True, 6, 1]]


def test_runs_without_per_frame_files_are_left_out(tmp_path):
    out = S.ablation_intervals(_grid(tmp_path, cce_per_frame=False), tmp_path, n_boot=B)
    assert sorted(set(out["variant"])) == ["full"]


def test_unpaired_ablation_runs_raise_but_do_not_stop_the_tables(tmp_path):
    df = _grid(tmp_path)
    fr = h36m_frames(SPEC)
    fr["camera"][0] = 3  # the baseline was evaluated on other frames
    save_npz(tmp_path / "b0" / "per_frame.npz", **with_errors(fr, np.zeros(17)))
    with pytest.raises(DataError, match=r"b0/per_frame.npz and .*c0/per_frame.npz are not paired: their 'camera'"):
        S.ablation_intervals(df, tmp_path, n_boot=B)
    assert S.ablation_intervals(df, tmp_path, n_boot=B, strict=False).empty
    table = T.build_tables(df, references=[], runs_dir=tmp_path)["ablation"][0]
    assert not any("CI" in c[1] for c in table.columns)


def test_ablation_table_interval_columns(tmp_path):
    df = _grid(tmp_path)
    table = T.build_tables(df, references=[], runs_dir=tmp_path)["ablation"][0]
    cols = [c for c in table.columns if "CI" in c[1]]
    assert cols == [("Gaussian", "ΔP1 [95% CI]"), ("Gaussian", "ΔP2 [95% CI]")]
    assert list(table.columns)[-2:] == cols  # inside the Gaussian group, after its columns
    assert ("Gaussian", "ΔP1") not in table.columns  # the interval's cell starts with the same difference
    assert table[cols[0]].tolist() == ["–", "-0.50 [-0.50, -0.50]", "+0.25 [0.25, 0.25]"]
    assert table[cols[1]].tolist() == ["–", "+0.00 [0.00, 0.00] n.s.", "-0.75 [-0.75, -0.75]"]
    assert "n.s.: the interval contains 0" in table.attrs["caption"]
    assert "paired bootstrap over 6 clips" in table.attrs["caption"]
    assert "$-$0.50 [$-$0.50, $-$0.50]" in T.to_latex(table)
    # without the run folders, or without any per-frame file: no interval columns at all
    plain = T.build_tables(df, references=[])["ablation"][0]
    assert not any("CI" in c[1] for c in plain.columns) and "95% CI" not in plain.attrs["caption"]
    assert ("Gaussian", "ΔP1") in plain.columns
    for run in ("b0", "c0", "f0"):
        (tmp_path / run / "per_frame.npz").unlink()
    bare = T.build_tables(df, references=[], runs_dir=tmp_path)["ablation"][0]
    assert list(bare.columns) == list(plain.columns) and bare.attrs["caption"] == plain.attrs["caption"]


# ----------------------------------------------------------------------------------------- the CLI
def test_compare_command(tmp_path):
    fr = h36m_frames(SPEC)
    base = np.arange(17) * 0.25 + 50  # P1 Avg: (Walking 51 + Eating 53.125) / 2
    a = make_run(tmp_path, "a", "baseline", 0, with_errors(fr, base, base - 10))
    b = make_run(tmp_path, "b", "cce", 0, with_errors(fr, base - 0.5, base - 10))
    runner = CliRunner()
    r = runner.invoke(app, ["compare", str(a), str(b), "--boot", "100"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[2:] == [
        "Human3.6M, refined pose (diffusion), mean over actions of the per-action mean, mm:",
        "  metric      A      B  Δ (B - A)  95% CI",
        "  P1      52.06  51.56      -0.50  [-0.50, -0.50]  significant",
        "  P2      42.06  42.06      +0.00  [+0.00, +0.00]  n.s. (the interval contains 0)",
        "method: paired bootstrap over 6 clips (subject x sequence x camera), stratified by action, one seed, "
        "B=100, percentile"]
    j = runner.invoke(app, ["compare", str(a), str(b), "--boot", "100", "--json"])
    assert j.exit_code == 0
    res = json.loads(j.output)
    assert res["intervals"][0]["delta"] == -0.5 and res["intervals"][1]["significant"] is False
    (tmp_path / "empty").mkdir()
    e = runner.invoke(app, ["compare", str(a), str(tmp_path / "empty")])
    assert e.exit_code == 2
    assert e.output.strip().splitlines() == [f"error: {tmp_path / 'empty'}: no per_frame.npz (nor a 'clips' "
                                             "record in metrics.json): nothing to compare frame by frame"]


def test_write_tables_draws_the_ablation_deltas(tmp_path):
    df = _grid(tmp_path)
    names = [p.name for p in T.write_tables(df, tmp_path / "tables", runs_dir=tmp_path, references=[])]
    assert "ablation_deltas_h36m.pdf" in names and "ablation_deltas_h36m.png" in names
    for run in ("b0", "c0", "f0"):  # no per-frame errors: no intervals, no figure
        (tmp_path / run / "per_frame.npz").unlink()
    names = [p.name for p in T.write_tables(df, tmp_path / "tables2", runs_dir=tmp_path, references=[])]
    assert not any(n.startswith("ablation_deltas") for n in names)
