"""CLI conventions (issue 13): --version, shell completion, help texts that keep their brackets, choice
lists that agree with the modules they name, --set / --profiles recorded in the run (config.json and
the folder name) and passed to --jobs workers, and one meaning of --data-root in every command."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import harness
from harness import cli
from harness.cli import app
from harness.config import FIELD_TYPES
from harness.data.synth import synth_h36m

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
WIDE = {"COLUMNS": "400"}  # no wrapping: a help text or a run name stays on one line
TINY = {"train_stride": 40, "test_stride": 40, "lifter_hid_dim": 16, "lifter_layers": 1, "lifter_heads": 2,
        "lifter_epochs": 0, "hid_dim": 16, "num_layers": 1, "n_head": 2, "epochs": 0, "batch_size": 128,
        "lifter_batch_size": 128, "gmm_max_components": 2, "gmm_max_samples": 500}


def _commands():
    def walk(c, path=()):
        if getattr(c, "commands", None):
            for name, sub in c.commands.items():
                yield from walk(sub, path + (name,))
        else:
            yield path, c
    return list(walk(typer.main.get_command(app)))


def test_version_names_the_package_and_the_commit():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0, r.output
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    expected = f"harness {harness.__version__}" + (f" (commit {head.stdout.strip()})" if head.returncode == 0 else "")
    assert r.output == expected + "\n"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert harness.__version__ == pyproject["project"]["version"] == "0.1.0"


def test_shell_completion_is_offered():
    r = runner.invoke(app, ["--help"], env=WIDE)
    assert r.exit_code == 0
    assert "--install-completion" in r.output and "--show-completion" in r.output


def test_every_bracket_in_a_help_text_survives_rich_markup():
    """Help texts are rich markup: an unescaped ``[w, mu_u, ...]`` vanishes from --help."""
    checked = 0
    for path, cmd in _commands():
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        wanted = [m.replace("\\[", "[") for t in texts for m in re.findall(r"\\?\[[^\]]*\]", t)]
        if not wanted:
            continue
        r = runner.invoke(app, [*path, "--help"], env=WIDE)
        shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.output).split())
        for text in wanted:
            assert " ".join(text.split()) in shown, (path, text)
            checked += 1
    assert checked >= 2  # data gmm's [w, mu_u, mu_v, s_u, s_v] and import-weights' states[4]


def test_choice_lists_agree_with_the_modules():
    from harness.bench import IMPLEMENTATIONS
    from harness.weights import FORMATS

    assert tuple(f.value for f in cli.WeightFormat) == FORMATS
    impl_help = next(p.help for p in typer.main.get_command(app).commands["bench"].params if p.name == "impl")
    assert all(name in impl_help for name in IMPLEMENTATIONS)
    for name, own in (("train", cli._TRAIN_OWN), ("ablate", cli._ABLATE_OWN)):
        options = {o for p in typer.main.get_command(app).commands[name].params for o in p.opts}
        assert set(own) <= set(FIELD_TYPES) and set(own.values()) <= options, name


def test_worker_argv_carries_every_grid_option():
    argv = cli.worker_argv(variants="full", noises="gaussian", benchmarks="h36m", seeds="0,1", profile="tiny",
                           profiles=Path("my/profiles.yaml"), recipe="released", device="cpu", out=Path("res"),
                           data_root=Path("../shared/data"), keypoints="gt", epochs=2, train_on=None,
                           set_items=["lr=2e-4", "flip_augment=false"])
    assert argv == ["--variants", "full", "--noises", "gaussian", "--benchmarks", "h36m", "--seeds", "0,1",
                    "--profile", "tiny", "--recipe", "released", "--device", "cpu", "--out", "res",
                    "--profiles", "my/profiles.yaml", "--data-root", "../shared/data", "--keypoints", "gt",
                    "--epochs", "2", "--set", "lr=2e-4", "--set", "flip_augment=false"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, harness_cache):
    """A small synthetic H36M under data/h36m, and a profiles file with a test-sized profile ``tiny``."""
    root = tmp_path_factory.mktemp("conventions")
    synth_h36m(root / "data" / "h36m", frames=8, takes=1)
    (root / "mine.yaml").write_text("profiles:\n  tiny:\n" + "".join(f"    {k}: {v}\n" for k, v in TINY.items()))
    return root


def _plan(*args: str) -> list[str]:
    r = runner.invoke(app, ["ablate", "--plan", "--device", "cpu", *args], env=WIDE)
    assert r.exit_code == 0, r.output
    return re.findall(r"^│ \d+ +│ (\S+) ", r.output, flags=re.M)


def test_set_and_profiles_reach_the_workers_plan(world):
    """A --jobs worker re-reads the options from its argv: its plan is the parent's."""
    common = ["--profiles", str(world / "mine.yaml"), "--profile", "tiny", "--benchmarks", "h36m",
              "--variants", "baseline,full", "--noises", "gaussian", "--data-root", str(world / "data")]
    parent = _plan(*common, "--set", "lr=2e-4")
    argv = cli.worker_argv(variants="baseline,full", noises="gaussian", benchmarks="h36m", seeds="0", profile="tiny",
                           profiles=world / "mine.yaml", recipe="harness", device="cpu", out=world / "res",
                           data_root=world / "data", keypoints=None, epochs=None, train_on=None,
                           set_items=["lr=2e-4"])
    worker = _plan(*argv, "--shard", "0/1")
    assert len(parent) == 2 and worker == parent
    assert not set(parent) & set(_plan(*common))  # without the --set: other runs


def test_data_root_is_the_parent_folder_or_the_benchmarks_own(world, tmp_path):
    common = ["--profiles", str(world / "mine.yaml"), "--profile", "tiny", "--benchmarks", "h36m",
              "--variants", "full", "--noises", "gaussian"]
    parent, own = _plan(*common, "--data-root", str(world / "data")), _plan(*common, "--data-root",
                                                                            str(world / "data" / "h36m"))
    assert len(parent) == 1 and parent == own  # one run, however the folder is spelled
    for root, out in ((world / "data", tmp_path / "a"), (world / "data" / "h36m", tmp_path / "b")):
        r = runner.invoke(app, ["data", "prepare", "--data-root", str(root), "--out", str(out)])
        assert r.exit_code == 0, r.output
    assert (tmp_path / "a" / "data_2d_h36m_gt.npz").read_bytes() == (tmp_path / "b" / "data_2d_h36m_gt.npz").read_bytes()
    r = runner.invoke(app, ["data", "check", "--data-root", str(world / "data")])
    assert r.exit_code == 0 and "no problems found" in r.output, r.output


def test_set_and_profiles_are_recorded_in_the_run(world, tmp_path):
    """`--set lr=2e-4` is another run folder, and its config.json says lr 0.0002; the user's profile's
    values and file are recorded too."""
    base = ["train", "--profiles", str(world / "mine.yaml"), "--profile", "tiny", "--variant", "baseline",
            "--data-root", str(world / "data"), "--device", "cpu", "--out", str(tmp_path)]
    runs = []
    for extra in ([], ["--set", "lr=2e-4", "--set", "lifter_epochs=0"]):
        r = runner.invoke(app, [*base, *extra], env=WIDE)
        assert r.exit_code == 0, r.output
        runs.append(Path(re.search(r"results in (\S+)", r.output).group(1)))
    plain, changed = runs
    assert plain != changed and plain.parent == changed.parent == tmp_path
    assert plain.name.startswith("h36m-baseline-gaussian-seed0-") and changed.name.startswith("h36m-baseline-gaussian-seed0-")
    a, b = (json.loads((d / "config.json").read_text()) for d in runs)
    assert (a["lr"], b["lr"]) == (0.001, 0.0002)
    assert {k for k in a if a[k] != b[k]} == {"lr"}  # lifter_epochs=0 is the tiny profile's own value
    assert a["profile"] == "tiny" and a["profiles_file"] == str(world / "mine.yaml")
    assert all(a[k] == v for k, v in TINY.items())
    ident = json.loads((changed / "identity.json").read_text())
    assert ident["config"]["lr"] == 0.0002 and "profiles_file" not in ident["config"]
    metrics = json.loads((changed / "metrics.json").read_text())
    assert metrics["config"]["lr"] == 0.0002 and changed.name.endswith(metrics["identity"]["hash"])


def test_a_broken_package_yaml_at_import_is_one_line(monkeypatch, capsys):
    """harness.cli reads the package's YAML files when imported (its choices); an error there comes before
    the CLI's own handler, and the entry point turns it into one line and the error's exit code."""
    import sys
    import types

    import pytest

    from harness import __main__ as entry
    from harness.errors import ConfigError

    class Broken(types.ModuleType):
        def __getattr__(self, name):
            raise ConfigError("harness/configs/variants.yaml: malformed YAML at line 2, column 1")

    monkeypatch.delenv("HARNESS_DEBUG", raising=False)
    monkeypatch.setitem(sys.modules, "harness.cli", Broken("harness.cli"))
    with pytest.raises(SystemExit) as exc:
        entry.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: harness/configs/variants.yaml: malformed YAML at line 2, column 1\n"


def test_set_refuses_compile_which_has_its_own_option(tmp_path):
    """--compile is checked up front (graphs off CUDA): --set must not go round it, in train or ablate."""
    from typer.testing import CliRunner

    from harness.cli import app

    for cmd in ("train", "ablate"):
        r = CliRunner().invoke(app, [cmd, "--set", "compile=graphs", "--device", "cpu", "--out", str(tmp_path / cmd)])
        assert r.exit_code == 2, r.output
        assert "error: --set compile: has its own option, use --compile" in r.output
        assert not (tmp_path / cmd).exists()
