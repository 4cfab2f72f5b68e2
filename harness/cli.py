"""The ``harness`` command line: a thin, typed Typer layer over importable logic.

Every user-caused failure is a :class:`harness.errors.HarnessError`; here it becomes one line on
stderr (``error: ...``) and exit code 2, with no traceback unless ``--debug`` is given.

Conventions: a choice among fixed names is an Enum, so ``--help`` lists the names and Typer refuses a
typo before the command runs (its usage block, exit 2); names that only exist once a file is read
(``--profile`` with ``--profiles``) and ``--device`` (``cuda:N``) are strings checked by
:mod:`harness.guards`, as are comma-separated lists, whose help lists the valid items. One spelling
per option everywhere (lists plural: ``--variants``); ``--data-root`` is the folder holding ``h36m/``
and ``3dhp/`` in every command (a benchmark's own folder works too: :func:`harness.data.resolve_data_root`
decides). Help texts are rich markup: a literal ``[`` is written ``\\[``.
"""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.config import load_profiles, load_recipes
from harness.errors import HarnessError
from harness.guards import PRECISIONS, cleans_up
from harness.protocols import BENCHMARKS
from harness.variants import GRID_NOISES, NOISES, VARIANTS

_ALL_VARIANTS = ",".join(VARIANTS)
_ALL_NOISES = ",".join(NOISES)
_GRID_NOISES = ",".join(GRID_NOISES)  # ablate's default: not 'kernels' (it needs --keypoints <name>_gmm)

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmarking and ablation harness for diffusion-based 3D human pose lifting.")
data_app = typer.Typer(no_args_is_help=True, help="Synthetic benchmarks, data preparation and checks.")
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}


def _choices(name: str, values) -> type[Enum]:
    """A str Enum of ``values`` (Typer lists them in --help and refuses anything else)."""
    return Enum(name, {v: v for v in values}, type=str)


Benchmark = _choices("Benchmark", BENCHMARKS)  # harness.protocols
Variant = _choices("Variant", VARIANTS.names())  # harness/configs/variants.yaml
Noise = _choices("Noise", NOISES.names())
Precision = _choices("Precision", PRECISIONS)  # harness.guards
Recipe = _choices("Recipe", load_recipes())  # harness/configs/recipes.yaml
# harness.weights.FORMATS, written out so that --help imports no torch (tests/e2e/test_cli_conventions.py
# checks they agree, and that bench --impl's help names every harness.bench.IMPLEMENTATIONS)
WeightFormat = _choices("WeightFormat", ("monomotiondiff", "diffpose"))


def _profile_names() -> str:
    try:
        return ", ".join(load_profiles())
    except HarnessError:  # a broken profiles.yaml is reported, in one line, when a command reads it
        return "smoke, quick, ..."


_DEVICE_HELP = "auto, cpu, cuda or cuda:N."
_DATA_ROOT = ("the folder holding h36m/ and 3dhp/ (or one benchmark's own folder, recognised by its files); "
              "default: the synthetic benchmark.")
_DATA_ROOT_HELP = "Real data: " + _DATA_ROOT
_H36M_ROOT_HELP = ("Real data: the folder holding h36m/ (or the h36m folder itself) with data_3d_h36m.npz and "
                   "cameras.h5")
_PROFILE_HELP = (f"How much to train: {_profile_names()} (harness/configs/profiles.yaml), or a name of your "
                 "--profiles file.")
_PROFILES_HELP = ("Your own profiles YAML (the schema of harness/configs/profiles.yaml): its names add to and "
                  "override the built-in ones; recorded in config.json (profiles_file).")
_SET_HELP = ("Repeatable: set any Config field (harness/config.py), parsed by its type: int, float "
             "(2e-4), bool (true, false, 1, 0), str, none (a field that may be empty). Applied last; changes the "
             "run's identity like any config value. Keys with their own option here (e.g. --seed) are refused.")


def handle_errors(fn: Callable) -> Callable:
    """Turn HarnessError (and a few OS errors) into one line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as e:
            if _state["debug"]:
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as e:
            if _state["debug"]:
                raise
            err_console.print(f"[bold red]error:[/] {escape(f'{e.filename}: {e.strerror}')}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]: finished results are kept; rerun to resume", highlight=False)
            raise typer.Exit(130) from None

    return wrapper


def version_text() -> str:
    """``harness <version>``, and the commit when the package runs from a git checkout."""
    from harness import __version__
    from harness.runs import git_commit

    commit = git_commit()
    return f"harness {__version__}" + (f" (commit {commit})" if commit else "")


def _print_version(value: bool) -> None:
    if value:
        console.print(version_text(), highlight=False)
        raise typer.Exit()


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
          version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the package version (and git commit) and exit.")) -> None:
    _state["debug"] = debug


# --------------------------------------------------------------------------------------------- data
@data_app.command("synth")
@handle_errors
def data_synth(
    benchmark: Benchmark = typer.Option(Benchmark("h36m"), "--benchmark", help="Which benchmark's file layout to write."),
    out: Path = typer.Option(..., "--out", help="Folder to write the files into."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed (the files are deterministic for a seed)."),
) -> None:
    """Write a synthetic benchmark in exactly the real files' layout (never into a folder of real data)."""
    import time

    from harness.data.synth import check_synth_target, synth_3dhp, synth_h36m

    check_synth_target(out)  # a folder holding real data files: refused, nothing written
    t0 = time.perf_counter()
    paths = (synth_h36m if benchmark.value == "h36m" else synth_3dhp)(out, seed=seed)
    for p in paths:
        console.print(f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB)", highlight=False)
    console.print(f"synthetic {benchmark.value} (seed {seed}) in {time.perf_counter() - t0:.1f} s", highlight=False)


@data_app.command("prepare")
@handle_errors
def data_prepare(
    data_root: Path = typer.Option(..., "--data-root", help=_H36M_ROOT_HELP + "."),
    out: Path = typer.Option(..., "--out", help="Folder to write data_2d_h36m_gt.npz into."),
    joints: int = typer.Option(17, "--joints", min=16, max=17,
                               help="16: write data_2d_h36m_gt16.npz, H36M order less Neck/Nose (--keypoints gt16)."),
) -> None:
    """Derive the ground-truth 2D file from the 3D and the cameras (VideoPose3D's prepare step)."""
    from harness.data import resolve_data_root
    from harness.data.h36m import prepare_gt_2d
    from harness.guards import check_data_root, check_out

    check_data_root(data_root)
    check_out(out, what="output folder")  # --out may be the data root itself (the file goes beside the 3D)
    path = prepare_gt_2d(resolve_data_root("h36m", data_root), out, joints=joints)
    console.print(f"wrote {path}", highlight=False)


@data_app.command("check")
@handle_errors
def data_check(
    benchmark: Benchmark = typer.Option(Benchmark("h36m"), "--benchmark", help="The benchmark whose files to check."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help=_DATA_ROOT_HELP),
    keypoints: str = typer.Option("gt", "--keypoints", help="H36M 2D keypoints name (data_2d_h36m_<name>.npz)."),
) -> None:
    """Summarise a data folder and list every problem found; exit 1 if there is any."""
    from harness.data import resolve_data_root

    root = resolve_data_root(benchmark.value, data_root)
    if benchmark.value == "h36m":
        from harness.data.h36m import scan_h36m

        report = scan_h36m(root, keypoints)
    else:
        from harness.data.mpi3dhp import scan_3dhp

        report = scan_3dhp(root)
    _print_report(report, title=f"{benchmark.value} data in {root}")
    problems = report.get("problems", []) if isinstance(report, dict) else getattr(report, "problems", [])
    if problems:
        err_console.print(f"[bold red]{len(problems)} problem(s) found[/]", highlight=False)
        for p in problems:
            err_console.print(f"  - {escape(str(p))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print("[green]no problems found[/]")


@data_app.command("gmm")
@handle_errors
def data_gmm(
    data_root: Path = typer.Option(..., "--data-root", help=_H36M_ROOT_HELP + ", and the detections."),
    keypoints: str = typer.Option(..., "--keypoints", help="Detections to convert: data_2d_h36m_<keypoints>.npz."),
    out: Path = typer.Option(..., "--out", help="Output file (DiffPose's data_2d_h36m_<name>_gmm.npz layout)."),
    kernels: int = typer.Option(5, "--kernels", min=1, max=16, help="Mixture components per joint."),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    r"""Write DiffPose's per-frame GMM 2D layout (frames x 17 x kernels x \[w, mu_u, mu_v, s_u, s_v])."""
    from harness.data import resolve_data_root
    from harness.data.gmm2d import build_gmm_2d, write_gmm_2d_npz
    from harness.data.h36m import H36M_3D_FILE, H36M_CAMERAS_FILE, h36m_2d_filename
    from harness.guards import check_data_root, check_keypoints, check_not_input, check_out

    check_data_root(data_root)
    data_root = resolve_data_root("h36m", data_root)
    check_keypoints(keypoints)
    check_out(out, kind="file")  # beside the detections is where DiffPose reads it: no data-root rule here
    check_not_input(out, [data_root / h36m_2d_filename(keypoints), data_root / H36M_3D_FILE,
                          data_root / H36M_CAMERAS_FILE])
    positions_2d, metadata = build_gmm_2d(data_root, keypoints, kernels=kernels, seed=seed)
    write_gmm_2d_npz(out, positions_2d, metadata)
    console.print(f"wrote {out} ({kernels} kernels per joint)", highlight=False)


def _print_report(report, title: str) -> None:
    rep = report if isinstance(report, dict) else vars(report)
    rows = rep.get("rows") or []
    if rows:
        table = Table(title=title)
        for col in rows[0]:
            table.add_column(str(col), justify="right" if isinstance(rows[0][col], (int, float)) else "left")
        for r in rows:
            table.add_row(*[f"{v:,}" if isinstance(v, int) else str(v) for v in r.values()])
        console.print(table)
    for key, value in rep.items():
        if key in ("rows", "problems"):
            continue
        console.print(f"{key}: {value}", highlight=False)


# ------------------------------------------------------------------------------------ variants
@app.command("variants")
@handle_errors
def variants_cmd(
    hid_dim: int = typer.Option(96, "--hid-dim", min=1, help="Hidden size to count parameters at."),
    num_layers: int = typer.Option(5, "--layers", min=1, help="Number of layers."),
    n_head: int = typer.Option(4, "--heads", min=1, help="Attention heads."),
) -> None:
    """List the denoiser variants and noise models, with parameter counts."""
    from harness.config import Config
    from harness.models import build_lifter, count_parameters
    from harness.models import build_denoiser

    cfg = Config(hid_dim=hid_dim, num_layers=num_layers, n_head=n_head)
    table = Table(title=f"Denoiser variants (hid {hid_dim}, {num_layers} layers, {n_head} heads)")
    for col, just in (("variant", "left"), ("CCE", "center"), ("CAG", "center"), ("parameters", "right"),
                      ("description", "left")):
        table.add_column(col, justify=just)
    for name in VARIANTS:
        info = VARIANTS.get(name)
        n = count_parameters(build_denoiser(name, hid_dim=cfg.hid_dim, num_layers=cfg.num_layers, n_head=cfg.n_head))
        table.add_row(name, "yes" if info["cce"] else "-", "yes" if info["cag"] else "-", f"{n:,}", info["description"])
    console.print(table)
    lifter = count_parameters(build_lifter(hid_dim=hid_dim, num_layers=num_layers, n_head=n_head))
    console.print(f"initial lifter (GraFormer): {lifter:,} parameters", highlight=False)
    for k in NOISES:
        console.print(f"noise [bold]{k}[/]: {escape(NOISES.get(k))}", highlight=False)


@app.command("recipes")
@handle_errors
def recipes_cmd(
    detected: bool = typer.Option(False, "--detected", help="The values for detected 2D input (CPN, SH, ...)."),
) -> None:
    """List the recipes (harness/configs/recipes.yaml) side by side, key by key."""
    from harness.config import load_recipes, recipe_keys, recipe_values

    recipes = load_recipes()
    table = Table(title=f"Recipes ({'detected' if detected else 'GT'} 2D input)")
    table.add_column("key")
    for name in recipes:
        table.add_column(name)
    values = {n: recipe_values(n, "cpn" if detected else "gt") for n in recipes}
    for key in sorted(recipe_keys()):
        cells = [str(values[n].get(key)) for n in recipes]
        table.add_row(key, *cells, style="bold" if len(set(cells)) > 1 else None)
    console.print(table)
    for name, r in recipes.items():
        console.print(f"[bold]{name}[/]: {escape(r['description'])}", highlight=False)


# --------------------------------------------------------------------------------- train / eval
class _ProgressPrinter:
    """train's and eval's progress callback, a context manager: on a terminal a rich bar per stage that
    moves within epochs (lifter, denoiser), the GMM fit and the evaluation; otherwise (a log file) one
    line per epoch (stage, epoch, loss, epoch time) and one as the GMM fit and the evaluation start."""

    def __init__(self) -> None:
        self.prog = None
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "_ProgressPrinter":
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console)
            self.prog.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.prog is not None:
            self.prog.stop()

    def _bar(self, key: str, description: str, **kw) -> None:
        if key not in self.tasks:
            self.tasks[key] = self.prog.add_task(description, **kw)
        self.prog.update(self.tasks[key], description=description, **kw)

    def __call__(self, ev: dict) -> None:
        stage, kind = ev.get("stage"), ev.get("kind", "epoch")
        out = self.prog.console if self.prog is not None else console
        if stage == "note":
            out.print(f"[yellow]note[/]: {escape(ev['text'])}", highlight=False, soft_wrap=True)
        elif self.prog is None:  # a log file: lines, never a bar
            if stage in ("lifter", "denoiser") and kind == "epoch":
                console.print(f"  {stage:8s} epoch {ev['epoch']:>4}/{ev['epochs']:<4} loss {ev['loss']:.5f}  "
                              f"{ev['seconds']:.1f} s", highlight=False)
            elif stage == "gmm" and not ev.get("done"):
                console.print(f"  fitting the GMM noise ({ev.get('total')} joints) ...", highlight=False)
            elif stage == "eval" and not ev.get("done"):
                console.print("  evaluating ...", highlight=False)
        elif stage in ("lifter", "denoiser") and ev.get("steps_per_epoch"):
            spe, e = ev["steps_per_epoch"], ev["epoch"]
            done = _steps_done(ev)
            loss = f" loss {ev['loss']:.4f}" if "loss" in ev else ""
            secs = f" ({ev['seconds']:.1f} s/epoch)" if kind == "epoch" else ""
            shown = min(e + 1, ev["epochs"]) if kind == "start" else e
            self._bar(stage, f"{stage} epoch {shown}/{ev['epochs']}{loss}{secs}", completed=done,
                      total=ev["epochs"] * spe)
        elif stage in ("gmm", "eval") and ev.get("total") is not None:
            self._bar(stage, "GMM noise fit (joints)" if stage == "gmm" else "evaluating (batches)",
                      completed=ev.get("done", 0), total=ev["total"])


def _steps_done(ev: dict) -> int:
    """The optimiser steps a training stage's progress event says are done (harness.train.records):
    after a "step" event its epoch's steps so far, else (start, epoch) whole epochs."""
    spe, e = ev.get("steps_per_epoch") or 1, ev["epoch"]
    return (e - 1) * spe + ev.get("step", 0) if ev.get("kind") == "step" else e * spe


def _progress_printer() -> _ProgressPrinter:
    """The progress callback of train and eval (:class:`_ProgressPrinter`); use it in a ``with``."""
    return _ProgressPrinter()


def print_metrics(result: dict) -> None:
    """A summary table of one run: rows are actions (H36M) or scenes (3DHP), columns the models."""
    m = result["metrics"]
    bench = result["config"]["benchmark"]
    train_on = result["config"].get("train_on")
    title = (f"{result['run']}\n({'synthetic' if result['data']['synthetic'] else 'real'} data, "
             + (f"trained on {train_on.upper()}, " if train_on else "")
             + f"{result['data']['test_frames']:,} test frames, {result['wall_time_s']:.0f} s)")
    table = Table(title=title)
    if bench == "h36m":
        table.add_column("action (mm)")
        for name in m:
            table.add_column(f"{name} P1", justify="right")
            table.add_column(f"{name} P2", justify="right")
        first = next(iter(m.values()))
        for a in first["p1"]:
            table.add_row(a, *[f"{m[n][p][a]:.1f}" for n in m for p in ("p1", "p2")],
                          style="bold" if a == "Avg" else None)
    else:
        # One row per model and scene (narrow enough for 80 columns). PCK, AUC, MPJPE: the 14 evaluation
        # joints; PCK17, AUC17, MPJPE17: all 17 (runs from before lack them).
        first = next(iter(m.values()))
        cols = [c for c in ("PCK", "AUC", "MPJPE", "PCK17", "AUC17", "MPJPE17") if c in first.get("All", {})]
        table.add_column("model")
        table.add_column("scene")
        for col in cols:
            table.add_column(col, justify="right")
        for k, name in enumerate(m):
            for key, vals in m[name].items():
                if isinstance(vals, dict) and "PCK" in vals:
                    table.add_row(name, key, *[f"{vals[c]:.1f}" for c in cols], style="bold" if key == "All" else None,
                                  end_section=key == "All" and k + 1 < len(m))
        if "PCK17" in cols:
            table.caption = "PCK, AUC, MPJPE: 14 evaluation joints; PCK17, AUC17, MPJPE17: all 17 joints"
    console.print(table)


_TRAIN_ON_HELP = ("Cross-dataset: train on this benchmark's training set instead (h36m with --benchmark 3dhp: "
                  "H36M S1 S5 S6 S7 S8, tested on 3DHP; --data-root then holds h36m/ and 3dhp/).")


_COMPILE_HELP = ("off (default, also on CUDA until a GPU run has passed the equivalence check), default "
                 "(torch.compile of the denoiser's training step and sampler) or graphs (+ CUDA graphs; CUDA only).")


_RECIPE_HELP = ("How to train and evaluate: harness (this project's defaults), released (the cross-channel code), "
                "diffpose (DiffPose's code); harness/configs/recipes.yaml. Orthogonal to --profile (the budget).")

# Config keys that have their own option in a command: --set refuses them, naming the option (one
# spelling per setting, so a run's command line cannot say a thing twice).
_TRAIN_OWN = {"variant": "--variant", "noise": "--noise", "benchmark": "--benchmark", "train_on": "--train-on",
              "data_root": "--data-root", "keypoints": "--keypoints", "profile": "--profile",
              "profiles_file": "--profiles", "recipe": "--recipe", "seed": "--seed", "device": "--device",
              "epochs": "--epochs", "hypotheses": "--hypotheses", "precision": "--precision",
              "initial_3d": "--initial-3d", "compile": "--compile"}
_ABLATE_OWN = {"variant": "--variants", "noise": "--noises", "benchmark": "--benchmarks", "seed": "--seeds",
               "profile": "--profile", "profiles_file": "--profiles", "recipe": "--recipe",
               "data_root": "--data-root", "keypoints": "--keypoints", "train_on": "--train-on",
               "device": "--device", "epochs": "--epochs", "compile": "--compile"}


def _value(choice: Optional[Enum]) -> Optional[str]:
    return None if choice is None else choice.value


@app.command("train")
@handle_errors
@cleans_up("out")
def train_cmd(
    variant: Variant = typer.Option(Variant("full"), "--variant", help="The denoiser variant (see `harness variants`)."),
    noise: Noise = typer.Option(Noise("gaussian"), "--noise", help="The training noise model."),
    benchmark: Benchmark = typer.Option(Benchmark("h36m"), "--benchmark", help="The benchmark tested on."),
    train_on: Optional[Benchmark] = typer.Option(None, "--train-on", help=_TRAIN_ON_HELP),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help=_DATA_ROOT_HELP),
    keypoints: Optional[str] = typer.Option(None, "--keypoints", help="H36M 2D input (default gt)."),
    profile: str = typer.Option("quick", "--profile", help=_PROFILE_HELP),
    profiles: Optional[Path] = typer.Option(None, "--profiles", help=_PROFILES_HELP),
    recipe: Recipe = typer.Option(Recipe("harness"), "--recipe", help=_RECIPE_HELP),
    seed: int = typer.Option(0, "--seed", min=0),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    out: Path = typer.Option(Path("runs"), "--out", help="Results folder."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=0, help="Override the profile's epochs."),
    hypotheses: Optional[int] = typer.Option(None, "--hypotheses", min=1, help="Draw H starts (mean and best-of-H)."),
    precision: Optional[Precision] = typer.Option(None, "--precision", help="Default fp32; bf16: autocast."),
    compile_mode: Optional[str] = typer.Option(None, "--compile", help=_COMPILE_HELP),
    initial_3d: Optional[Path] = typer.Option(None, "--initial-3d",
                                              help="Your own initial 3D poses (npz, the 2D file's layout) instead of the lifter."),
    set_items: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=_SET_HELP),
) -> None:
    """Train one variant (the shared lifter first, reused if present) and evaluate it."""
    from harness.config import parse_sets, resolve_config
    from harness.guards import check_options
    from harness.pipeline import run
    from harness.runs import check_writable
    from harness.safeio import read_json

    check_options(device=device, precision=_value(precision), profile=profile, profiles=profiles,
                  recipe=recipe.value, keypoints=keypoints, variant=variant.value, noise=noise.value, seed=seed,
                  epochs=epochs, hypotheses=hypotheses, data_root=data_root, out=out)
    from harness.device import check_compile

    check_compile(compile_mode, device)
    sets = parse_sets(set_items, _TRAIN_OWN)
    cfg = resolve_config(profile, {"variant": variant.value, "noise": noise.value, "benchmark": benchmark.value,
                                   "train_on": _value(train_on),
                                   "data_root": str(data_root) if data_root else None, "keypoints": keypoints,
                                   "seed": seed, "device": device, "epochs": epochs, "hypotheses": hypotheses,
                                   "precision": _value(precision), "compile": compile_mode,
                                   "initial_3d": str(initial_3d) if initial_3d else None,
                                   "profiles_file": str(profiles) if profiles else None},
                         recipe=recipe.value, sets=sets)
    check_writable(out)
    console.print(f"training {cfg.variant} / {cfg.noise} on {cfg.benchmark}"
                  f"{f' (trained on {cfg.train_on})' if cfg.train_on else ''} "
                  f"({'synthetic' if cfg.data_root is None else cfg.data_root}), profile {profile}, recipe {cfg.recipe}",
                  highlight=False)
    with _progress_printer() as progress:
        run_dir = run(cfg, out, progress=progress)
    result = read_json(run_dir / "metrics.json")
    print_metrics(result)
    console.print(f"results in {run_dir}", highlight=False)


@app.command("import-weights")
@handle_errors
@cleans_up("out")
def import_weights_cmd(
    denoiser: Path = typer.Option(..., "--denoiser", help="Released denoiser checkpoint (.pth)."),
    out: Path = typer.Option(..., "--out", help="The run folder to create (must not exist, or be empty)."),
    lifter: Optional[Path] = typer.Option(None, "--lifter", help="DiffPose's lifter (gcn_xyz_cpn.pth / gcn_xyz_gt.pth)."),
    fmt: Optional[WeightFormat] = typer.Option(None, "--format", help="The checkpoint's source (default: read off the keys)."),
    ema: bool = typer.Option(False, "--ema", help="Take the EMA shadow (states\\[4]) instead of the raw weights the released evaluations use."),
    n_head: int = typer.Option(4, "--heads", min=1, help="Attention heads (not stored in the weights; 4 in every released config)."),
    benchmark: Benchmark = typer.Option(Benchmark("h36m"), "--benchmark", help="Benchmark `harness eval` evaluates it on."),
    keypoints: str = typer.Option("gt", "--keypoints", help="2D input `eval` uses (cpn_ft_h36m_dbb for the CPN weights)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="The data `eval` uses: " + _DATA_ROOT),
) -> None:
    """Import released weights (monoMotionDiff DiffModel, DiffPose GCNdiff, DiffPose's lifter) as a run folder."""
    from harness.guards import check_options
    from harness.weights import import_weights

    check_options(keypoints=keypoints, data_root=data_root, out=out)
    run_dir = import_weights(denoiser, out, lifter=lifter, fmt=_value(fmt), ema=ema, n_head=n_head,
                             benchmark=benchmark.value, keypoints=keypoints,
                             data_root=str(data_root) if data_root else None)
    from harness.safeio import read_json

    cfg, origin = read_json(run_dir / "config.json"), read_json(run_dir / "origin.json")
    console.print(f"imported {origin['denoiser']['source']} ({cfg['variant']}, hid {cfg['hid_dim']}, "
                  f"{cfg['num_layers']} layers; {origin['denoiser']['weights']}), recipe {cfg['recipe']}"
                  f"{'' if origin.get('lifter') else '; no lifter: eval trains the harness lifter'}", highlight=False)
    console.print(f"run folder {run_dir}: `harness eval {run_dir}` or `harness predict {run_dir} --input ...`",
                  highlight=False)


@app.command("predict")
@handle_errors
def predict_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder (`harness train` or `harness import-weights`)."),
    input_path: Path = typer.Option(..., "--input", help="npz with pose_2d (N, 17 or 16, 2)."),
    output_path: Path = typer.Option(..., "--output", help="npz to write: pose_3d and lifter_3d (N, J, 3), metres."),
    image_size: Optional[tuple[int, int]] = typer.Option(None, "--image-size", help="W H: pose_2d is in pixels."),
    device: Optional[str] = typer.Option(None, "--device", help=_DEVICE_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output file."),
) -> None:
    """Lift your own 2D poses to 3D with a run's lifter and denoiser, using the run's recipe."""
    from harness.predict import predict

    arrays = predict(run_dir, input_path, output_path, image_size=image_size, device=device, overwrite=overwrite)
    console.print(f"wrote {output_path}: pose_3d {tuple(arrays['pose_3d'].shape)}, lifter_3d "
                  f"{tuple(arrays['lifter_3d'].shape)}", highlight=False)


@app.command("eval")
@handle_errors
def eval_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder written by `harness train`."),
    device: Optional[str] = typer.Option(None, "--device", help=_DEVICE_HELP),
    precision: Optional[Precision] = typer.Option(None, "--precision", help="Sample in this precision (default: the run's own)."),
) -> None:
    """Re-evaluate a trained run from its checkpoint into eval-<precision>.json (never its training results)."""
    from harness.guards import check_options
    from harness.pipeline import evaluate_run

    check_options(device=device, precision=_value(precision))
    with _progress_printer() as progress:
        result = evaluate_run(run_dir, device=device, progress=progress, precision=_value(precision))
    print_metrics(result)
    if "path" in result:
        console.print(f"wrote {result['path']}", highlight=False)


# --------------------------------------------------------------------------------------- ablate
def _csv(text: str, option: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        from harness.errors import ConfigError

        raise ConfigError(f"{option}: empty list")
    return items


@app.command("ablate")
@handle_errors
@cleans_up("out")
def ablate_cmd(
    variants: str = typer.Option(_ALL_VARIANTS, "--variants", help=f"Comma-separated, of {_ALL_VARIANTS.replace(',', ', ')}."),
    noises: str = typer.Option(_GRID_NOISES, "--noises", help=f"Comma-separated, of {_ALL_NOISES.replace(',', ', ')}."),
    benchmarks: str = typer.Option(",".join(BENCHMARKS), "--benchmarks", help=f"Comma-separated, of {', '.join(BENCHMARKS)}."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds (integers >= 0)."),
    profile: str = typer.Option("quick", "--profile", help=_PROFILE_HELP),
    profiles: Optional[Path] = typer.Option(None, "--profiles", help=_PROFILES_HELP),
    recipe: Recipe = typer.Option(Recipe("harness"), "--recipe", help=_RECIPE_HELP),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help=_DATA_ROOT_HELP),
    keypoints: Optional[str] = typer.Option(None, "--keypoints", help="H36M 2D input (default gt)."),
    train_on: Optional[Benchmark] = typer.Option(None, "--train-on", help=_TRAIN_ON_HELP),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    out: Path = typer.Option(Path("results"), "--out", help="Results folder."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=0, help="Override the profile's epochs."),
    show_plan: bool = typer.Option(False, "--plan", help="List the grid's runs (and their status) and exit."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Run the slice i/n of the grid (0 <= i < n)."),
    tables: bool = typer.Option(True, "--tables/--no-tables", help="Write results.csv, tables and plots at the end."),
    jobs: int = typer.Option(0, "--jobs", min=0,
                             help="Worker processes, each a shard of the grid (0: one per CPU core, at most 4; one per GPU)."),
    set_items: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=_SET_HELP),
    compile_mode: Optional[str] = typer.Option(None, "--compile", help=_COMPILE_HELP),
) -> None:
    """Run the ablation grid (variants x noises x benchmarks x seeds), resuming where it stopped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from harness.ablate import Shard, plan, run_grid
    from harness.config import parse_sets
    from harness.guards import check_options, parse_ints
    from harness.runs import check_writable, is_done, run_name

    seed_list = parse_ints(seeds, "--seeds")
    check_options(device=device, profile=profile, profiles=profiles, recipe=recipe.value, keypoints=keypoints,
                  variants=_csv(variants, "--variants"), noises=_csv(noises, "--noises"),
                  benchmarks=_csv(benchmarks, "--benchmarks"), seeds=seed_list, epochs=epochs,
                  data_root=data_root, out=out)
    from harness.device import check_compile

    check_compile(compile_mode, device)
    sets = parse_sets(set_items, _ABLATE_OWN)
    overrides = {"data_root": str(data_root) if data_root else None, "keypoints": keypoints, "device": device,
                 "epochs": epochs, "train_on": _value(train_on), "recipe": recipe.value,
                 "profiles_file": str(profiles) if profiles else None, "compile": compile_mode}
    cfgs = plan(_csv(variants, "--variants"), _csv(noises, "--noises"), _csv(benchmarks, "--benchmarks"),
                seed_list, profile, overrides, sets=sets)
    sh = Shard.parse(shard)
    mine = sh.take(cfgs)
    if show_plan:
        table = Table(title=f"ablation plan: {len(cfgs)} runs" + (f", shard {sh.index}/{sh.count}: {len(mine)}" if sh.count > 1 else ""))
        for col in ("#", "run", "benchmark", "variant", "noise", "seed", "status"):
            table.add_column(col, overflow="fold")
        for k, c in enumerate(cfgs):
            if c in mine:
                table.add_row(str(k), run_name(c), c.benchmark, c.variant, c.noise, str(c.seed),
                              "done" if is_done(c, out) else "pending")
        console.print(table)
        return
    check_writable(out)
    from harness.ablate import auto_jobs, run_parallel

    n_jobs = jobs or auto_jobs(device, len([c for c in mine if not is_done(c, out)]))
    if n_jobs > 1:
        if sh.count > 1:
            from harness.errors import ConfigError

            raise ConfigError("--jobs with --shard: give one of them (--jobs 1 to run a shard in one process)")
        argv = worker_argv(variants=variants, noises=noises, benchmarks=benchmarks, seeds=seeds, profile=profile,
                           profiles=profiles, recipe=recipe.value, device=device, out=out, data_root=data_root,
                           keypoints=keypoints, epochs=epochs, train_on=_value(train_on), set_items=set_items,
                           compile_mode=compile_mode)
        console.print(f"{len(mine)} runs in {n_jobs} worker processes (logs in {out / 'logs'})", highlight=False)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console) as prog:
            grid = prog.add_task(f"grid ({profile})", total=len(mine))
            workers = [prog.add_task(f"worker {k}: starting", total=None) for k in range(n_jobs)]

            def on_tick(done: int, last: list[str]) -> None:
                prog.update(grid, completed=done)
                for task, line in zip(workers, last):
                    prog.update(task, description=escape(line[:100]) or "-")

            from harness.ablate import gpu_assignment
            from harness.device import select_device

            gpus = gpu_assignment(n_jobs) if select_device(device).type == "cuda" else None
            failed = run_parallel(argv, n_jobs, mine, out, on_tick=on_tick, gpus=gpus)
            for task in workers:
                prog.update(task, visible=False)
        done = sum(is_done(c, out) for c in mine)
        console.print(f"{done} of {len(mine)} run(s) done", highlight=False)
        if failed:
            messages = sorted({last.removeprefix("error: ") for _, _, last in failed})
            for msg in messages:  # one line per distinct error (workers often fail alike)
                err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        if tables:
            _write_tables(out)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console) as prog:
        grid = prog.add_task(f"grid ({profile})", total=len(mine))
        cur = prog.add_task("", total=1, visible=False)

        def on_event(ev: dict) -> None:
            e = ev["event"]
            if e == "skip":
                prog.console.print(f"[dim]skip[/] {ev['run']} (results exist)", highlight=False)
                prog.advance(grid)
            elif e == "busy":
                prog.console.print(f"[yellow]busy[/] {ev['run']} (another process holds it)", highlight=False)
                prog.advance(grid)
            elif e == "start":
                prog.update(cur, description=f"{ev['run']}: loading", completed=0, total=1, visible=True)
            elif e == "progress" and ev.get("stage") in ("lifter", "denoiser"):
                kind, spe = ev.get("kind", "epoch"), ev.get("steps_per_epoch") or 1
                if kind == "epoch" and not prog.console.is_terminal:  # a log file (Slurm, nohup): one line per epoch
                    prog.console.print(f"{ev['run']}: {ev['stage']} epoch {ev['epoch']}/{ev['epochs']} "
                                       f"loss {ev['loss']:.5f} {ev['seconds']:.1f} s", highlight=False)
                if kind == "epoch":
                    desc = f"{ev['stage']} loss {ev['loss']:.4f} ({ev['seconds']:.1f} s/epoch)"
                elif kind == "step":  # the bar moves within the epoch, in steps
                    desc = f"{ev['stage']} loss {ev['loss']:.4f}"
                else:
                    desc = f"{ev['stage']}"
                prog.update(cur, description=f"{ev['run']}: {desc}", completed=_steps_done(ev),
                            total=ev["epochs"] * spe)
            elif e == "progress" and ev.get("stage") in ("gmm", "eval"):
                what = "GMM noise fit" if ev["stage"] == "gmm" else "evaluating"
                prog.update(cur, description=f"{ev['run']}: {what}", completed=ev.get("done", 0),
                            total=ev.get("total") or 1)
            elif e == "progress" and ev.get("stage") == "note":
                prog.console.print(f"[yellow]note[/]: {escape(ev['text'])}", highlight=False, soft_wrap=True)
            elif e == "finish":
                prog.console.print(f"[green]done[/] {ev['run']}", highlight=False)
                prog.advance(grid)

        outcome = run_grid(mine, out, on_event)
        prog.update(cur, visible=False)
    console.print(f"{len(outcome['done'])} run(s) done, {len(outcome['skipped'])} skipped (results existed), "
                  f"{len(outcome['busy'])} busy elsewhere", highlight=False)
    if tables:
        _write_tables(out)


def worker_argv(*, variants: str, noises: str, benchmarks: str, seeds: str, profile: str, profiles: Path | None,
                recipe: str, device: str, out: Path, data_root: Path | None, keypoints: str | None,
                epochs: int | None, train_on: str | None, set_items: list[str],
                compile_mode: str | None = None) -> list[str]:
    """The ``harness ablate`` options an ``--jobs`` worker is started with: every option of the parent
    that decides the grid (the worker adds ``--shard k/n --jobs 1 --no-tables``), ``--set`` items as given."""
    argv = ["--variants", variants, "--noises", noises, "--benchmarks", benchmarks, "--seeds", seeds,
            "--profile", profile, "--recipe", recipe, "--device", device, "--out", str(out)]
    for opt, val in (("--profiles", profiles), ("--data-root", data_root), ("--keypoints", keypoints),
                     ("--epochs", epochs), ("--train-on", train_on), ("--compile", compile_mode)):
        if val is not None:
            argv += [opt, str(val)]
    for item in set_items:
        argv += ["--set", item]
    return argv


def _write_tables(results_dir: Path, out: Path | None = None, fmt: str = "text", as_json: bool = False) -> None:
    """Write the report of a results set (:func:`harness.report.write_report`: results.csv, tables,
    figures, swapped into place as one set) and print its summary (``fmt`` text or md, or ``as_json``;
    with md or JSON the summary alone goes to stdout, the paths written to stderr)."""
    import json

    from harness.report import write_report
    from harness.report.tables import summary_json, summary_markdown, summary_rich, summary_tables

    df, paths = write_report(results_dir, out)
    tables = summary_tables(df)
    if as_json:
        sys.stdout.write(json.dumps(summary_json(tables), indent=2, ensure_ascii=False) + "\n")
    elif fmt == "md":
        sys.stdout.write(summary_markdown(tables))
    else:
        console.print(summary_rich(tables))
    where = console if fmt == "text" and not as_json else err_console
    for p in paths:
        where.print(f"wrote {escape(str(p))}", highlight=False, soft_wrap=True)


SummaryFormat = _choices("SummaryFormat", ("text", "md"))


@app.command("tables")
@handle_errors
def tables_cmd(
    results_dir: Path = typer.Argument(Path("results"), help="A results folder (run folders with metrics.json) or a results.csv."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for results.csv, tables and figures (default: RESULTS_DIR/tables)."),
    fmt: SummaryFormat = typer.Option(SummaryFormat("text"), "--format", help="The printed summary: text (a table per benchmark) or md (Markdown)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON (a list of tables) instead."),
) -> None:
    """Regenerate results.csv, the Markdown/LaTeX tables and the plots from a results set; print a summary."""
    _write_tables(results_dir, out, fmt.value, as_json)


@app.command("compare")
@handle_errors
def compare_cmd(
    run_a: str = typer.Argument(..., help="Run folder A (several, comma-separated: one per seed)."),
    run_b: str = typer.Argument(..., help="Run folder B (several, comma-separated: paired with A's by seed)."),
    boot: int = typer.Option(10000, "--boot", min=1, help="Bootstrap replicates."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the bootstrap's random draws."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """P1/P2 (3DHP: MPJPE, PCK) of two runs and B - A with its 95% paired-bootstrap interval over test
    clips (harness/report/significance.py); says whether the interval contains 0."""
    import json

    from harness.report.significance import compare_runs, comparison_lines

    result = compare_runs([Path(p) for p in _csv(run_a, "RUN_A")], [Path(p) for p in _csv(run_b, "RUN_B")],
                          n_boot=boot, seed=seed)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for line in comparison_lines(result):
        console.print(escape(line), highlight=False, soft_wrap=True)


@app.command("check")
@handle_errors
def check_cmd(
    results_dir: Path = typer.Argument(Path("results"), help="Results folder to check."),
    baseline: Path = typer.Option(..., "--baseline", help="Baseline JSON (results/baselines/*.json)."),
    tolerance: float = typer.Option(0.02, "--tolerance", min=0.0, help="Allowed relative worsening."),
    abs_tolerance: float = typer.Option(0.1, "--abs-tolerance", min=0.0, help="Allowed absolute worsening (mm / %)."),
    update: bool = typer.Option(False, "--update", help="Write the results as the new baseline instead of checking."),
) -> None:
    """Compare a results set with a baseline; exit 1 naming every run and metric that got worse beyond
    tolerance, is missing on either side, or is not a finite, plausible number (harness/report/check.py)."""
    import math

    from harness.errors import ConfigError, DataError
    from harness.report.check import (baseline_problems, check_runs, metric_keys, read_baseline, run_metric_keys,
                                      write_baseline)
    from harness.report.results import collect, unfinished_runs
    from harness.runs import git_commit

    for name, value in (("--tolerance", tolerance), ("--abs-tolerance", abs_tolerance)):
        if not math.isfinite(value):
            raise ConfigError(f"{name}: expected a finite number >= 0, got {value}")
    df = collect(results_dir)  # a metrics.json that is not UTF-8 JSON of the expected shape: one line
    unfinished = unfinished_runs(results_dir)
    if df.empty and not unfinished:
        raise DataError(f"{results_dir}: no finished runs to check")
    runs = run_metric_keys(df)
    if update:
        problems = baseline_problems(runs, unfinished)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise DataError(f"{baseline}: not written: {problems[0]}{more}; a baseline holds finite, plausible "
                            f"numbers of finished runs only")
        results = metric_keys(df)
        profiles = sorted(set(df["profile"]))
        path = write_baseline(baseline, results, ",".join(profiles), git_commit())
        console.print(f"wrote baseline {path} ({len(results)} metrics)", highlight=False)
        return
    base = read_baseline(baseline)["metrics"]
    rep = check_runs(runs, base, rel_tol=tolerance, abs_tol=abs_tolerance, unfinished=unfinished)
    for note in rep.notes:
        console.print(f"[yellow]note[/]: {escape(note)}", highlight=False, soft_wrap=True)
    if rep.failures:
        err_console.print(f"[bold red]{len(rep.failures)} problem(s) against {escape(str(baseline))} "
                          f"({rep.worse} of {len(base)} metric(s) worse):[/]", highlight=False, soft_wrap=True)
        for f in rep.failures:
            err_console.print(f"  - {escape(str(f))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[green]ok[/]: {len(base)} metrics within tolerance of {escape(str(baseline))}", highlight=False)


# ---------------------------------------------------------------------------------------- bench
@app.command("bench")
@handle_errors
@cleans_up("out")
def bench_cmd(
    variants: str = typer.Option(_ALL_VARIANTS, "--variants", help=f"Comma-separated, of {_ALL_VARIANTS.replace(',', ', ')}."),
    batch: int = typer.Option(1024, "--batch", min=2, help="Poses per training step and per pass."),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    precision: Precision = typer.Option(Precision("fp32"), "--precision", help="bf16: autocast."),
    impl: str = typer.Option("fast", "--impl",
                             help="Comma-separated, of fast, reference (the readable models), compiled."),
    hypotheses: str = typer.Option("1,5", "--hypotheses", help="Hypothesis counts for the end-to-end figure."),
    hid_dim: int = typer.Option(96, "--hid-dim", min=1),
    num_layers: int = typer.Option(5, "--layers", min=1),
    n_head: int = typer.Option(4, "--heads", min=1),
    reps: int = typer.Option(5, "--reps", min=1, help="Timed repetitions per figure (median)."),
    warmup: int = typer.Option(2, "--warmup", min=0, help="Untimed runs first."),
    compile_mode: Optional[str] = typer.Option(None, "--compile-mode", help="torch.compile mode for --impl compiled."),
    out: Path = typer.Option(Path("results/bench"), "--out", help="Folder for the JSON result."),
    tag: Optional[str] = typer.Option(None, "--tag", help="JSON file name (default: device-precision-impls-batch)."),
    suite: Optional[str] = typer.Option(None, "--suite",
                                        help="gpu: the device check (equivalence, 4 modes x 2 batches, poses/s, "
                                             "paper projection) into OUT/gpu-<device>.json; takes --device, --out, --tag."),
) -> None:
    """Training samples/s, denoiser and end-to-end poses/s and peak memory per variant."""
    from harness.bench import IMPLEMENTATIONS, print_table, run_bench
    from harness.guards import check_names, check_options, parse_ints

    if suite is not None:
        from harness.bench import print_suite, run_gpu_suite
        from harness.errors import ConfigError

        if suite != "gpu":
            raise ConfigError(f"--suite {suite!r}: the only suite is gpu")
        check_options(device=device, out=out)
        res = run_gpu_suite(device, out_dir=out, tag=tag,
                            progress=lambda s: err_console.print(f"[dim]{escape(s)}[/]", highlight=False))
        print_suite(res)
        console.print(f"wrote {res['path']}", highlight=False)
        return
    hyps = parse_ints(hypotheses, "--hypotheses")
    check_options(device=device, precision=precision.value, variants=_csv(variants, "--variants"), hypotheses=hyps,
                  out=out)
    check_names(_csv(impl, "--impl"), "implementation", "--impl", IMPLEMENTATIONS)
    res = run_bench(_csv(variants, "--variants"), batch=batch, device=device, precision=precision.value,
                    hypotheses=hyps, out_dir=out, implementations=_csv(impl, "--impl"),
                    compile_mode=compile_mode, hid_dim=hid_dim, num_layers=num_layers, n_head=n_head,
                    reps=reps, warmup=warmup, tag=tag,
                    progress=lambda s: err_console.print(f"[dim]{escape(s)}[/]", highlight=False))
    print_table(res)
    console.print(f"wrote {res['path']}", highlight=False)


# ----------------------------------------------------------------------------------------- entry
def main() -> None:
    try:
        app()
    except HarnessError as e:  # raised outside a command (e.g. at import of a YAML file)
        if _state["debug"]:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
