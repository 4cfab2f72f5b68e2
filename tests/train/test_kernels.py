"""DiffPose's per-frame kernel noise (``--noise kernels`` on ``--keypoints <name>_gmm``): the step draws a
kernel per sample and joint, uses its mu as the 2D and its sigma as the u, v std; a tiny run on a
``*_gmm`` file is reproducible and resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.config import Config, resolve_config

TINY = dict(train_stride=8, test_stride=8, lifter_hid_dim=16, lifter_layers=1, lifter_heads=2, lifter_epochs=1,
            hid_dim=16, num_layers=1, n_head=2, epochs=2, batch_size=128, lifter_batch_size=128, device="cpu")


class _Recorder(torch.nn.Module):
    """A denoiser stand-in: eps_theta = w * x_t; keeps what the step gave it."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, x_t, t, x2d):
        self.seen.append((x_t.detach().clone(), t.clone(), x2d.detach().clone()))
        return x_t * self.w


def _kernels(b: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = torch.empty(b, 17, 3, 5)
    w = torch.rand(b, 17, 3, generator=g) + 0.1
    k[..., 0] = w / w.sum(-1, keepdim=True)
    k[..., 1:3] = torch.rand(b, 17, 3, 2, generator=g) * 2 - 1
    k[..., 3:5] = torch.rand(b, 17, 3, 2, generator=g) * 0.05 + 0.005
    return k


@pytest.mark.parametrize("flip", [False, True])
def test_step_uses_the_drawn_kernel_as_2d_and_its_sigma_as_std(flip):
    """The step's draws, in order: flip mask, kernel per (sample, joint), noise, timesteps; the model's
    guide 2D and x_0's u, v are the drawn mu (mirrored with the pose), eps's u, v std its sigma."""
    from harness.diffusion import DDIMScheduler, antithetic_timesteps
    from harness.noise import KernelNoise
    from harness.train.augment import Flip
    from harness.train.step import DenoiserStep

    cfg = Config(flip_augment=flip, noise="kernels", keypoints="x_gmm")
    model, noise, dev = _Recorder(), KernelNoise(), torch.device("cpu")
    step = DenoiserStep.build(cfg, model, noise, 17, dev)
    b = 64
    kern = _kernels(b)
    x2d = torch.full((b, 17, 2), 7.0)  # the heaviest mu in a real batch: replaced by the draw
    y3d = torch.randn(b, 17, 3, generator=torch.Generator().manual_seed(5))
    step(x2d, y3d, torch.Generator().manual_seed(3), kern)
    x_t, t, guide = model.seen[0]

    g = torch.Generator().manual_seed(3)
    fl = Flip(17)
    m = torch.rand(b, generator=g) < 0.5 if flip else None
    mu, sig = noise.draw(kern, generator=g)
    y = y3d
    if flip:
        mu, y = fl.random(mu, m), fl.random(y3d, m)
        sig = torch.where(m.view(-1, 1, 1), sig[:, fl.perm], sig)
    eps = noise.sample(b, generator=g, sigma=sig)
    t_exp = antithetic_timesteps(b, cfg.num_timesteps, generator=g)
    sched = DDIMScheduler(beta_start=cfg.beta_start, beta_end=cfg.beta_end, num_train_timesteps=cfg.num_timesteps)
    assert torch.equal(guide, mu) and torch.equal(t, t_exp)
    assert torch.equal(x_t, sched.q_sample(torch.cat([mu, y], -1), t, eps))
    assert not torch.equal(guide, x2d)  # the batch's own 2D is not used


def test_step_with_kernel_noise_and_no_kernels_is_an_error():
    from harness.errors import DataError
    from harness.noise import KernelNoise
    from harness.train.step import DenoiserStep

    step = DenoiserStep.build(Config(), _Recorder(), KernelNoise(), 17, torch.device("cpu"))
    with pytest.raises(DataError, match=r"noise 'kernels': the training batch has no per-frame GMM 2D kernels"):
        step(torch.zeros(4, 17, 2), torch.zeros(4, 17, 3), torch.Generator())


@pytest.fixture(scope="module")
def gmm_cfg(tmp_path_factory, harness_cache):
    """A small synthetic H36M (1 take of ~30 frames per action) with its GMM 2D file
    (``harness data gmm``'s conversion of the synthetic detector, 2 kernels)."""
    from harness.data.gmm2d import build_gmm_2d, write_gmm_2d_npz
    from harness.data.synth.writer import synth_h36m

    root = tmp_path_factory.mktemp("gmm") / "h36m"
    synth_h36m(root, frames=30, takes=1)
    pos, meta = build_gmm_2d(root, "synth_det", kernels=2, seed=0, max_samples=2000)
    write_gmm_2d_npz(root / "data_2d_h36m_synth_det_gmm.npz", pos, meta)
    return resolve_config("smoke", dict(TINY, data_root=str(root), keypoints="synth_det_gmm", noise="kernels"))


def test_tiny_kernel_noise_run_is_reproducible_and_resumes(tmp_path, gmm_cfg):
    from harness.data import load_data
    from harness.pipeline import run
    from harness.runs import run_name

    data = load_data(gmm_cfg)
    assert data["train"].meta["gmm_2d"].shape == (len(data["train"]), 17, 2, 5)
    full = run(gmm_cfg, tmp_path / "a", data=data)
    assert json.loads((full / "noise.json").read_text())["name"] == "kernels"
    # the same run again, stopped after 1 of 2 epochs and resumed: the same draws, the same metrics
    part = run(gmm_cfg.replace(epochs=1), tmp_path / "b", data=load_data(gmm_cfg))
    target = tmp_path / "b" / run_name(gmm_cfg)
    target.mkdir(parents=True)
    (part / "checkpoint.pt").rename(target / "checkpoint.pt")
    resumed = run(gmm_cfg, tmp_path / "b", data=load_data(gmm_cfg))
    a = json.loads((full / "metrics.json").read_text())["metrics"]
    b = json.loads((resumed / "metrics.json").read_text())["metrics"]
    assert a == b
    p1 = a["diffusion"]["p1"]["Avg"]
    assert np.isfinite(p1) and p1 > 0
    # test 2D drawn from the kernels (gmm_test_input sample): another run name, other numbers
    drawn_cfg = gmm_cfg.replace(gmm_test_input="sample")
    assert run_name(drawn_cfg) != run_name(gmm_cfg)
    assert drawn_cfg.lifter_hash() != gmm_cfg.lifter_hash()  # the lifter's test predictions differ too
    drawn = json.loads((run(drawn_cfg, tmp_path / "a") / "metrics.json").read_text())["metrics"]
    assert drawn["lifter"]["p1"]["Avg"] != a["lifter"]["p1"]["Avg"]
    assert drawn["diffusion"]["p1"]["Avg"] != p1
