"""Every LaTeX table `harness tables` writes compiles in an IEEE two-column conference paper
(``\\documentclass[conference]{IEEEtran}``) with no overfull \\hbox: the committed results sets and the
widest synthetic set (4 variants x 2 noises x 2 seeds, two profiles, CPN input with its two references,
values of three digits, 3DHP on 14 and 17 joints trained on H36M), in one document, one pdflatex run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.report import tables as T
from harness.report.results import collect
from tests.report.test_tables import _hp_run, frame, h36m_run

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ["h36m-gt-cpu", "h36m16-gt-cpu", "3dhp-from-h36m-cpu"]


def _kpsewhich(name: str) -> str:
    exe = shutil.which("kpsewhich")
    if exe is None:
        return ""
    return subprocess.run([exe, name], capture_output=True, text=True, timeout=30).stdout.strip()


def _need_latex() -> str:
    """pdflatex, IEEEtran.cls and the Times metrics IEEEtran sets its text in, or why the test skips."""
    if shutil.which("pdflatex") is None:
        return "pdflatex not found (apt-get install texlive-latex-base texlive-latex-recommended)"
    if not _kpsewhich("IEEEtran.cls"):
        return "IEEEtran.cls not found (`kpsewhich IEEEtran.cls`; apt-get install texlive-publishers)"
    if not _kpsewhich("ptmr7t.tfm"):
        return "Times font metrics ptmr7t.tfm not found, which IEEEtran needs (apt-get install texlive-fonts-recommended)"
    return ""


pytestmark = pytest.mark.skipif(bool(_need_latex()), reason=_need_latex() or "-")


def widest() -> pd.DataFrame:
    """The widest results set: every variant x noise x 2 seeds, in two profiles (one of another recipe:
    rows tagged ``[quick/released]``), on H36M with CPN 2D (two references, so two Δ columns) and on 3DHP
    trained on H36M with the 17-joint figures; three-digit values with a two-digit std (``105.0 ± 7.1``)."""
    parts = []
    for variant in ("baseline", "cce", "cag", "full"):
        for noise in ("gaussian", "gmm"):
            for seed in (0, 1):
                for recipe in ("harness", "released"):
                    over = {"profile": "quick", "recipe": recipe}
                    parts.append(h36m_run(variant, noise, seed, 100 + 10 * seed, 110 + 10 * seed,
                                          keypoints="cpn_ft_h36m_dbb", synthetic=False, data_root="/d",
                                          name=f"c-{variant}-{noise}-{seed}-{recipe}", **over))
                    run = _hp_run(variant, noise, seed, 88.0 + seed, 53.0 + seed, 100.0 + 10 * seed, joints17=True,
                                  train_on="h36m", **over)
                    parts.append([{**r, "run": r["run"] + f"-{recipe}"} for r in run])
    return frame(*parts)


def _intervals(df: pd.DataFrame, runs_dir) -> pd.DataFrame:
    """Three-digit differences with intervals for every row of :func:`widest` (what
    ``significance.ablation_intervals`` gives when the runs' per-frame errors are there: each row names
    its setting), one of each benchmark not significant: the widest interval cells,
    ``-10.25 [-12.50, -8.00]`` and ``n.s.``."""
    rows = []
    for (bench, keypoints, synthetic, train_on), _ in T.split_settings(df):
        metrics = ("P1", "P2") if bench == "h36m" else ("PCK", "MPJPE", "MPJPE17")
        for profile in ("quick", "quick/released"):
            for variant in ("cce", "cag", "full"):
                for noise in ("gaussian", "gmm"):
                    for m in metrics:
                        ns = variant == "cce" and noise == "gmm"
                        rows.append(dict(benchmark=bench, keypoints=keypoints, synthetic=synthetic, train_on=train_on,
                                         profile=profile, variant=variant, noise=noise, metric=m, delta=-10.25,
                                         lo=-12.5, hi=1.25 if ns else -8.0, significant=not ns, n_clips=232,
                                         n_seeds=2, method="paired bootstrap over 232 clips, seed-averaged over 2 seeds"))
    return pd.DataFrame(rows)


def _documents(monkeypatch) -> dict[str, str]:
    docs = {}
    for name in COMMITTED:
        for stem, tables in T.build_tables(collect(ROOT / "results" / name)).items():
            docs[f"{name}-{stem}"] = T.tex_file(tables)
    for stem, tables in T.build_tables(widest()).items():
        docs[f"widest-{stem}"] = T.tex_file(tables)
    monkeypatch.setattr(T.significance, "ablation_intervals", lambda df, runs_dir, strict=True: _intervals(df, runs_dir))
    docs["widest-ablation-ci"] = T.tex_file(T.build_tables(widest(), runs_dir=ROOT)["ablation"])
    return docs


def test_every_table_fits_an_ieee_two_column_paper(tmp_path, monkeypatch):
    docs = _documents(monkeypatch)
    assert sorted(docs) == sorted(
        ["h36m-gt-cpu-h36m_p1", "h36m-gt-cpu-h36m_p2", "h36m-gt-cpu-ablation", "h36m16-gt-cpu-h36m_p1",
         "h36m16-gt-cpu-h36m_p2", "h36m16-gt-cpu-ablation", "3dhp-from-h36m-cpu-3dhp", "3dhp-from-h36m-cpu-ablation",
         "widest-h36m_p1", "widest-h36m_p2", "widest-3dhp", "widest-ablation", "widest-ablation-ci"])
    assert "$-$10.25 [$-$12.50, $-$8.00]" in docs["widest-ablation-ci"] and "n.s." in docs["widest-ablation-ci"]
    assert "105.0 $\\pm$ 7.1" in docs["widest-h36m_p1"] and "[quick/released]" in docs["widest-ablation"]
    body = []
    for name, tex in docs.items():
        first = tex.splitlines()[0]
        assert first.startswith("% booktabs tables") and "\\usepackage{booktabs,graphicx}" in first, name
        (tmp_path / f"{name}.tex").write_text(tex, encoding="utf-8")
        body += [f"\\input{{{name}}}", "\\clearpage"]  # flush the floats: at most 18 wait at once
    floats = sum(tex.count("\\begin{table") for tex in docs.values())
    assert floats == 8 + 5 + 2  # committed: 3 + 3 + 2; widest: P1, P2, 3DHP, two ablations and the two with CIs
    (tmp_path / "paper.tex").write_text("\n".join(
        ["\\documentclass[conference]{IEEEtran}", "\\usepackage{booktabs}", "\\usepackage{graphicx}",
         "\\begin{document}", "\\section{Results}", "Text in one column.", *body, "\\end{document}", ""]))
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    overfull = [m.group(0) for m in re.finditer(r"Overfull \\hbox \([^)]*\)[^\n]*", log)]
    assert overfull == []
    assert "Output written on paper.pdf" in log
