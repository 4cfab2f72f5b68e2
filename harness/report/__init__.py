"""Reporting: results collected from run folders into one tidy table (:mod:`~harness.report.results`),
the rows tables and figures share (:mod:`~harness.report.rows`), Markdown/LaTeX tables
(:mod:`~harness.report.tables`), figures (:mod:`~harness.report.plots`) and the accuracy gate
(:mod:`~harness.report.check`). Every table is a pure function of the tidy table."""

from __future__ import annotations

from pathlib import Path


def write_report(results_dir: Path, out: Path | None = None):
    """results.csv, Markdown/LaTeX tables and figures of a results set: a pure function of its metrics,
    written as one set and swapped into place whole (:func:`harness.report.tables.write_table_set`).

    ``results_dir`` is a results folder (run folders with ``metrics.json``) or a ``results.csv``; the
    output folder defaults to ``<results>/tables``. Returns ``(tidy DataFrame, paths written)``."""
    from harness.errors import DataError
    from harness.report.results import collect, read_tidy
    from harness.report.tables import write_table_set

    results_dir = Path(results_dir)
    from_csv = results_dir.is_file()
    df = read_tidy(results_dir) if from_csv else collect(results_dir)
    if df.empty:
        raise DataError(f"{results_dir}: no finished runs (no */metrics.json)")
    runs_dir = results_dir.parent if from_csv else results_dir
    out_dir = Path(out) if out is not None else runs_dir / "tables"
    paths = write_table_set(df, out_dir, runs_dir=runs_dir, tidy=not from_csv,
                            keep=[results_dir] if from_csv else [])
    return df, paths
