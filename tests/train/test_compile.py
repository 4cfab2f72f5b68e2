"""The capture-ready training step and sampler (issue 14): ``torch.compile(fullgraph=True)`` of the
denoiser's whole update (forward, backward, clip, Adam, EMA) and of one sampler call succeeds on the
CPU with zero graph breaks, and gives the eager step's losses and weights to float32 rounding.

Tiny models (hid 16, 1 layer, batch 8) and the ``aot_eager`` backend for the step (dynamo and AOT
autograd trace forward and backward; no code generation), dynamo's ``eager`` for the sampler, so the
file stays fast; inductor and CUDA graphs are ``harness bench --suite gpu``'s."""

from __future__ import annotations

import pytest
import torch

from harness.config import Config
from harness.errors import ConfigError

TINY = dict(hid_dim=16, num_layers=1, n_head=2, batch_size=8, eval_batch_size=8, device="cpu")
STEPS = 3


def _step(compile_mode: str, dropout: float):
    from harness.models.fast import build_denoiser
    from harness.noise import GaussianNoise
    from harness.train.step import DenoiserStep

    from harness.bench import no_dropout

    torch.manual_seed(0)
    model = build_denoiser("full", hid_dim=16, num_layers=1, n_head=2, dropout=dropout).train()
    if not dropout:
        no_dropout(model)   # also the blocks' hard-coded p = 0.1
    cfg = Config(**TINY, dropout=dropout, compile=compile_mode)
    return DenoiserStep.build(cfg, model, GaussianNoise(), 17, torch.device("cpu"), backend="aot_eager")


def _train(step) -> list[float]:
    g = torch.Generator().manual_seed(1)
    x2d, y3d = torch.randn(8, 17, 2, generator=g), torch.randn(8, 17, 3, generator=g)
    torch.manual_seed(5)  # the dropout masks' seeds come from torch's generator, in the same order
    gen = torch.Generator().manual_seed(2)
    return [float(step(x2d, y3d, gen)) for _ in range(STEPS)]


def _dropout() -> float:
    """0.25 with the fused kernels (their hashed masks are the same eager and compiled); off without
    them (eager masks then come from NumPy, compiled ones from torch.rand: other masks)."""
    from harness.models.fast import native

    return 0.25 if native.available() else 0.0


@pytest.fixture(scope="module")
def trained():
    """(eager step, compiled step, eager losses, compiled losses, graph breaks, graphs compiled)."""
    from torch._dynamo.utils import counters

    eager = _step("off", dropout=_dropout())
    le = _train(eager)
    breaks0, graphs0 = sum(counters["graph_break"].values()), counters["stats"]["unique_graphs"]
    comp = _step("default", dropout=_dropout())
    lc = _train(comp)
    return (eager, comp, le, lc, sum(counters["graph_break"].values()) - breaks0,
            counters["stats"]["unique_graphs"] - graphs0)


def test_compiled_step_is_one_graph_without_breaks(trained):
    *_, breaks, graphs = trained
    assert breaks == 0      # fullgraph=True would have raised on one; the counter says none was met
    assert graphs == 1      # forward, backward, clip, Adam, EMA: one graph, no recompilation over 3 steps


def test_compiled_step_gives_the_eager_losses_and_weights(trained):
    """Dropout on (0.25, with the fused kernels): their masks come from seeds drawn in the same order,
    so the two steps see the same masks. The key projections' biases are left out of the weight comparison: a
    softmax is invariant to them, their float gradient is rounding noise (~1e-10) that Adam scales to
    +-lr, differently for every rounding of it."""
    eager, comp, le, lc, *_ = trained
    if _dropout():
        assert le[0] == pytest.approx(69.934052, rel=1e-5)  # pinned: the tiny eager step's first loss
    assert lc == pytest.approx(le, rel=1e-5, abs=0)
    we, wc = eager.model.state_dict(), comp.model.state_dict()
    keys = [k for k in we if ".linears.1.bias" not in k]
    assert len(keys) == len(we) - 2   # the denoiser's and the guide stream's attention
    moved = max(float((we[k] - _step("off", 0.0).model.state_dict()[k]).abs().max()) for k in keys[:4])
    assert moved > 1e-3   # the weights did move (3 Adam steps of lr 1e-3)
    assert max(float((we[k] - wc[k]).abs().max()) for k in keys) < 1e-6
    ee, ec = eager.ema.state_dict(), comp.ema.state_dict()
    assert max(float((ee[k] - ec[k]).abs().max()) for k in keys) < 1e-6
    assert eager.ema.num_updates == comp.ema.num_updates == STEPS
    # the optimiser is an ordinary Adam for the checkpoint and the schedule: its steps on the device
    st = comp.opt.state_dict()["state"][0]
    assert float(st["step"]) == STEPS and comp.opt.param_groups[0]["capturable"]


def test_compiled_sampler_is_one_graph_and_equals_eager():
    from torch._dynamo.utils import counters

    from harness.diffusion.sampler import Sampler
    from harness.models.fast import build_denoiser
    from harness.train.augment import Flip

    torch.manual_seed(0)
    model = build_denoiser("full", hid_dim=16, num_layers=1, n_head=2)
    cfg = Config(**TINY)
    g = torch.Generator().manual_seed(3)
    x2d, y3d = torch.randn(8, 17, 2, generator=g), torch.randn(8, 17, 3, generator=g)
    eager = Sampler(cfg, model, Flip(17), torch.device("cpu"))
    breaks0, graphs0 = sum(counters["graph_break"].values()), counters["stats"]["unique_graphs"]
    # dynamo's own backend: no backward to trace (the step's test covers AOT autograd)
    comp = Sampler(cfg.replace(compile="default"), model, Flip(17), torch.device("cpu"), backend="eager")
    a, b = eager(x2d, y3d), comp(x2d, y3d)
    assert comp.compiled and not eager.compiled
    assert float((a - b).abs().max()) < 1e-6 and float(a.abs().max()) > 0.1
    # a short batch (an evaluation's last) is padded to eval_batch_size: the same graph, the same poses
    a5, b5 = eager(x2d[:5], y3d[:5]), comp(x2d[:5], y3d[:5])
    assert b5.shape == (5, 17, 3) and float((a5 - b5).abs().max()) < 1e-6
    assert sum(counters["graph_break"].values()) - breaks0 == 0
    assert counters["stats"]["unique_graphs"] - graphs0 == 1


def test_graph_break_count_sees_a_break():
    """:func:`harness.device.graph_breaks` (what ``harness bench`` reports when a fullgraph compile
    fails) counts a host sync with a Python branch on its value as one break."""
    from harness.device import graph_breaks

    def synced(x):
        y = x * 2
        if float(y.sum()) > 0:   # .item(): a host sync, then Python branching on a value
            y = y + 1
        return y

    count, reasons = graph_breaks(synced, torch.ones(3))
    assert count == 1 and len(reasons) == 1
    assert graph_breaks(lambda x: x * 2 + 1, torch.ones(3))[0] == 0


def test_static_epoch_drops_the_last_partial_batch():
    from harness.device import DeviceData
    from harness.train.loop import _epoch

    data = DeviceData(torch.zeros(10, 17, 2), torch.zeros(10, 17, 3))
    seen: list[int] = []

    def step(x, y):
        seen.append(x.shape[0])
        return torch.ones(())

    gen = torch.Generator().manual_seed(0)
    assert _epoch(data, 4, gen, torch.device("cpu"), step) == 1.0
    assert seen == [4, 4, 2]
    seen.clear()
    assert _epoch(data, 4, gen, torch.device("cpu"), step, drop_last=True) == 1.0
    assert seen == [4, 4]
    seen.clear()
    _epoch(data, 16, gen, torch.device("cpu"), step, drop_last=True)   # a batch larger than the split
    assert seen == [10]


def test_compile_options_are_one_line_errors():
    from harness.config import resolve_config
    from harness.device import check_compile

    with pytest.raises(ConfigError, match=r"^--compile graphs: CUDA graphs need a CUDA device \(this run is on cpu\)"):
        check_compile("graphs", "cpu")
    check_compile("default", "cpu")
    with pytest.raises(ConfigError, match=r"^--compile 'fast': must be one of off, default, graphs$"):
        check_compile("fast", "cpu")
    with pytest.raises(ConfigError, match=r"'compile' must be off, default or graphs"):
        resolve_config("smoke", {"compile": "fast"})   # a profile or a config file: the config's check
    # off is the default everywhere (CUDA too) and leaves a run's name as it was
    assert Config().compile == "off"
    assert resolve_config("smoke", {}).hash() == resolve_config("smoke", {"compile": "off"}).hash()
    assert resolve_config("smoke", {}).hash() != resolve_config("smoke", {"compile": "default"}).hash()


@pytest.mark.parametrize("args, line", [
    (["--compile", "fast"], "error: --compile 'fast': must be one of off, default, graphs"),
    (["--compile", "graphs", "--device", "cpu"],
     "error: --compile graphs: CUDA graphs need a CUDA device (this run is on cpu); use --compile default or off"),
])
@pytest.mark.parametrize("cmd", [["train"], ["ablate", "--jobs", "1"]])
def test_cli_compile_option_is_one_line_and_writes_nothing(tmp_path, cmd, args, line):
    from typer.testing import CliRunner

    from harness.cli import app

    r = CliRunner().invoke(app, [*cmd, *args, "--out", str(tmp_path / "new")])
    assert r.exit_code == 2 and r.output.strip().splitlines() == [line]
    assert not (tmp_path / "new").exists()
