"""Training and evaluation: the shared lifter stage, the denoiser, DDIM inference, metrics.

Layout of a results folder (``--out``, default ``runs/``)::

    <out>/shared/lifter-<hash>/      the first stage, shared by every variant of a benchmark and seed
        config.json  checkpoint.pt  predictions.npz  gmm-<hash>.json
    <out>/<run-name>/                one variant x noise x benchmark x seed
        config.json  checkpoint.pt  metrics.json  per_frame.npz  noise.json

Everything is written to a temporary file and renamed into place; a run resumes from its last
checkpoint. Data live on the device and are batched by index (no per-sample Python).
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from harness import __version__
from harness.config import Config, config_from_dict, validate
from harness.data.base import PoseSet
from harness.errors import ConfigError, DataError, HarnessError
from harness.safeio import atomic_path
from harness.skeleton import H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT

CHECKPOINT_FORMAT = 1
NUM_SAMPLE_POSES = 8
ProgressFn = Callable[[dict[str, Any]], None]


# ------------------------------------------------------------------------------------------ basics
def select_device(name: str) -> torch.device:
    from harness.config import DEVICES

    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name!r}: must be one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use --device auto or cpu)")
    return dev


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, kind: str, cfg_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load a self-describing checkpoint with ``weights_only=True`` (no code can run) and check it
    belongs to this kind of model, format and config."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: checkpoint not found") from None
    except Exception as e:  # unpickling refused, truncated file, ...
        import re

        refused = re.search(r"GLOBAL ([\w.]+)", str(e))  # torch's weights-only refusal names the global
        if refused:
            raise DataError(f"{path}: unsafe checkpoint, refused to unpickle '{refused.group(1)}' "
                            "(only tensors and plain data are allowed)") from None
        msg = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: unreadable or unsafe checkpoint ({msg[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: checkpoint format {state.get('format') if isinstance(state, dict) else '?'} "
                        f"is not {CHECKPOINT_FORMAT} (written by another harness version)")
    if state.get("kind") != kind:
        raise DataError(f"{path}: checkpoint holds a '{state.get('kind')}', expected a '{kind}'")
    if cfg_dict is not None:
        theirs = state.get("config", {})
        for key in ("variant", "hid_dim", "num_layers", "n_head", "lifter_hid_dim", "lifter_layers", "lifter_heads"):
            if key in theirs and key in cfg_dict and theirs[key] != cfg_dict[key]:
                raise DataError(f"{path}: checkpoint was trained with {key}={theirs[key]!r}, "
                                f"this run has {key}={cfg_dict[key]!r}")
    return state


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    st = {"generator": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(gen: torch.Generator, st: dict[str, Any]) -> None:
    gen.set_state(st["generator"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


# ------------------------------------------------------------------------------------------- data
@dataclass
class DeviceData:
    """A split's inputs on the device: 2D (N,J,2), 3D (N,J,3)."""

    pose_2d: torch.Tensor
    pose_3d: torch.Tensor

    @classmethod
    def from_poseset(cls, ps: PoseSet, device: torch.device) -> "DeviceData":
        return cls(torch.from_numpy(np.ascontiguousarray(ps.pose_2d, dtype=np.float32)).to(device),
                   torch.from_numpy(np.ascontiguousarray(ps.pose_3d, dtype=np.float32)).to(device))

    def __len__(self) -> int:
        return int(self.pose_2d.shape[0])


class Flip:
    """Left/right mirroring on (B, J, C) tensors: negate x, swap left and right joints."""

    def __init__(self, num_joints: int, left=H36M_JOINTS_LEFT, right=H36M_JOINTS_RIGHT, device=None):
        perm = list(range(num_joints))
        for a, b in zip(left, right):
            perm[a], perm[b] = b, a
        self.perm = torch.tensor(perm, dtype=torch.long, device=device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = x.index_select(-2, self.perm)
        sign = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
        sign[0] = -1
        return out * sign

    def random(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Flip the rows where ``mask`` (B,) is true."""
        return torch.where(mask.view(-1, *([1] * (x.dim() - 1))), self(x), x)


def load_data(cfg: Config) -> dict[str, PoseSet]:
    """The benchmark's train/test PoseSets for ``cfg`` (synthetic when ``data_root`` is None)."""
    from harness.data import resolve_data_root

    root = resolve_data_root(cfg.benchmark, cfg.data_root)
    if cfg.benchmark == "h36m":
        from harness.data.h36m import load_h36m

        data = load_h36m(root, keypoints=cfg.keypoints)
        if cfg.keypoints != "gt":  # the GT 2D gives the detector's residuals for the GMM noise fit
            gt = load_h36m(root, keypoints="gt")
            if data["train"].num_joints == gt["train"].num_joints and len(gt["train"]) == len(data["train"]):
                data["train"].meta["pose_2d_gt"] = gt["train"].pose_2d
    else:
        from harness.data.mpi3dhp import load_3dhp

        data = load_3dhp(root)
    if data.get("test") is not None and data["test"].num_joints != 17:
        raise DataError(f"{root}: keypoints '{cfg.keypoints}' have {data['test'].num_joints} joints; "
                        "the models need the 17-joint H36M layout")
    if "train" not in data or len(data["train"]) == 0:
        why = ("none of the training subjects S1, S5, S6, S7, S8 in data_3d_h36m.npz" if cfg.benchmark == "h36m"
               else "data_train_3dhp.npz is absent or empty")
        raise DataError(f"{root}: no training data for benchmark '{cfg.benchmark}' ({why})")
    if "test" not in data or len(data["test"]) == 0:
        why = ("none of the test subjects S9, S11 in data_3d_h36m.npz" if cfg.benchmark == "h36m"
               else "no test sequences")
        raise DataError(f"{root}: no test data for benchmark '{cfg.benchmark}' ({why})")
    out = {"train": data["train"], "test": data["test"]}
    from harness.data.synth import is_synthetic

    out["train"].meta["synthetic"] = cfg.data_root is None or is_synthetic(root)
    if cfg.train_stride > 1:
        keep = np.arange(len(out["train"])) % cfg.train_stride == 0
        gt2d = out["train"].meta.get("pose_2d_gt")
        out["train"] = out["train"].subset(keep)
        if gt2d is not None:
            out["train"].meta["pose_2d_gt"] = gt2d[keep]
    if cfg.test_stride > 1:
        out["test"] = out["test"].subset(np.arange(len(out["test"])) % cfg.test_stride == 0)
    for split, ps in out.items():
        if not (np.isfinite(ps.pose_2d).all() and np.isfinite(ps.pose_3d).all()):
            raise DataError(f"{root}: {split} split has NaN or Inf values")
    return out


# ------------------------------------------------------------------------------------- optimiser
class EMA:
    """Exponential moving average of a model's float parameters (DiffPose's EMAHelper, rate 0.999).

    With ``warmup`` the decay of the update that follows ``n`` earlier ones is
    ``min(rate, (1 + n) / (10 + n))``, as diffusers' ``EMAModel.get_decay`` does: without it a short
    run's average is mostly the random initial weights (0.999 ** 300 = 0.74 after 300 steps). The
    decay reaches 0.999 at n = 8,990, so the released schedule (about 1,430 updates an epoch on
    H36M) is unchanged after its seventh epoch. ``warmup=False`` is DiffPose's constant decay.
    """

    def __init__(self, model: torch.nn.Module, rate: float, warmup: bool = True):
        self.rate, self.warmup = rate, warmup
        self.num_updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._floats = [k for k, v in self.shadow.items() if v.dtype.is_floating_point]

    def decay(self) -> float:
        """The decay the next update uses."""
        n = self.num_updates
        return min(self.rate, (1.0 + n) / (10.0 + n)) if self.warmup else self.rate

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """``shadow = d * shadow + (1 - d) * weights``: one ``_foreach_lerp_`` over the float
        entries (a handful of kernels instead of one per tensor: on a GPU, ~250 launches a step)."""
        d = self.decay()
        self.num_updates += 1
        sd = model.state_dict()
        if self._floats:
            torch._foreach_lerp_([self.shadow[k] for k in self._floats], [sd[k] for k in self._floats], 1.0 - d)
        for k, v in sd.items():
            if not v.dtype.is_floating_point:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, sd: dict[str, torch.Tensor], num_updates: int = 0) -> None:
        for k, v in sd.items():
            self.shadow[k].copy_(v)
        self.num_updates = int(num_updates)


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------------------- lifter
def lifter_dir(cfg: Config, out: Path) -> Path:
    return Path(out) / "shared" / f"lifter-{cfg.benchmark}-seed{cfg.seed}-{cfg.lifter_hash()}"


def build_lifter_for(cfg: Config) -> torch.nn.Module:
    from harness.models import build_lifter

    return build_lifter(hid_dim=cfg.lifter_hid_dim, num_layers=cfg.lifter_layers, n_head=cfg.lifter_heads,
                        dropout=cfg.lifter_dropout)


def _predict(model_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int) -> torch.Tensor:
    outs = [model_fn(x[i:i + batch]) for i in range(0, x.shape[0], batch)]
    return torch.cat(outs, 0) if outs else x.new_zeros((0,))


def lifter_predict(model: torch.nn.Module, pose_2d: torch.Tensor, flip: Flip, batch: int, precision: str,
                   device: torch.device, test_flip: bool = True) -> torch.Tensor:
    """Root-relative 3D from the lifter, averaged with the flipped input's (un-flipped) prediction."""
    model.eval()

    def fn(x):
        with torch.no_grad(), _autocast(device, precision):
            y = model(x).float()
            if test_flip:
                y = 0.5 * (y + flip(model(flip(x)).float()))
        return y - y[:, :1]

    return _predict(fn, pose_2d, batch)


def initial_predictions(path: Path, data: dict[str, PoseSet]) -> dict[str, np.ndarray]:
    """The user's own initial 3D poses, from an npz in the 2D file's layout: ``positions_3d`` (or
    ``positions_2d``) ``[subject][action]`` -> one (frames, 17, 3) array per camera, camera frame,
    metres (made root-relative here). Every test frame must be covered; training frames are optional
    (they are needed only for the GMM noise fit)."""
    from harness.safeio import load_npz

    path = Path(path)
    z = load_npz(path)
    pos = z.get("positions_3d", z.get("positions_2d"))
    if not isinstance(pos, dict):
        raise DataError(f"{path}: expected a pickled dict 'positions_3d[subject][action]' of per-camera arrays")
    out: dict[str, np.ndarray] = {}
    for split, ps in data.items():
        pred = np.full(ps.pose_3d.shape, np.nan, dtype=np.float32)
        for key in sorted(set(zip(ps.subject.tolist(), ps.sequence.tolist(), ps.camera.tolist()))):
            s, a, c = key
            rows = np.flatnonzero((ps.subject == s) & (ps.sequence == a) & (ps.camera == c))
            try:
                arr = np.asarray(pos[s][a][int(c)], dtype=np.float32)
            except (KeyError, IndexError, TypeError):
                if split == "test":
                    raise DataError(f"{path}: no initial 3D for {s} '{a}' camera {c}") from None
                continue
            if arr.ndim != 3 or arr.shape[1:] != ps.pose_3d.shape[1:]:
                raise DataError(f"{path}: {s} '{a}' camera {c} has shape {arr.shape}, "
                                f"expected (frames, {ps.pose_3d.shape[1]}, 3)")
            frames = ps.frame[rows]
            if frames.max() >= len(arr):
                raise DataError(f"{path}: {s} '{a}' camera {c} has {len(arr)} frames, need {frames.max() + 1}")
            pred[rows] = arr[frames]
        done = np.isfinite(pred).all(axis=(1, 2))
        if split == "test" and not done.all():
            raise DataError(f"{path}: NaN or Inf in the initial 3D of {int((~done).sum())} test frames")
        pred[done] -= pred[done][:, :1]
        if split == "test" or done.all():
            out[split] = pred
    return out


def train_lifter(cfg: Config, data: dict[str, PoseSet], out: Path, device: torch.device,
                 progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
    """Train (or reuse, or resume) the shared GraFormer lifter; return its predictions on both splits.
    A lock on its folder makes a second process wait for the first instead of training it twice."""
    from harness.locks import folder_lock

    if cfg.initial_3d:
        return initial_predictions(Path(cfg.initial_3d), data)
    with folder_lock(lifter_dir(cfg, out)):
        return _train_lifter(cfg, data, out, device, progress)


def _train_lifter(cfg: Config, data: dict[str, PoseSet], out: Path, device: torch.device,
                  progress: ProgressFn | None) -> dict[str, np.ndarray]:
    folder = lifter_dir(cfg, out)
    pred_path = folder / "predictions.npz"
    if pred_path.exists():
        with np.load(pred_path, allow_pickle=False) as z:
            preds = {k: z[k] for k in z.files}
        if preds.get("train", np.zeros(0)).shape[:1] == (len(data["train"]),) and \
                preds.get("test", np.zeros(0)).shape[:1] == (len(data["test"]),):
            return preds
    folder.mkdir(parents=True, exist_ok=True)
    cfg_dict = cfg.to_dict()
    write_json(folder / "config.json", {k: cfg_dict[k] for k in Config.LIFTER_KEYS})

    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    model = build_lifter_for(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lifter_lr)
    # Exponential decay to a tenth of the initial rate over the stage (GraFormer decays 0.96 per 100k steps).
    gamma = 0.1 ** (1.0 / max(cfg.lifter_epochs, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    train = DeviceData.from_poseset(data["train"], device)
    flip = Flip(train.pose_2d.shape[1], device=device)
    start = 0
    ckpt = folder / "checkpoint.pt"
    if ckpt.exists():
        st = load_checkpoint(ckpt, "lifter", cfg_dict)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        _set_rng_state(gen, st["rng"])
        start = st["epoch"] + 1
    n = len(train)
    for epoch in range(start, cfg.lifter_epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen, device=device)
        total, count = torch.zeros((), device=device), 0
        for i in range(0, n, cfg.lifter_batch_size):
            idx = perm[i:i + cfg.lifter_batch_size]
            x, y = train.pose_2d[idx], train.pose_3d[idx]
            if cfg.flip_augment:
                m = torch.rand(idx.shape[0], generator=gen, device=device) < 0.5
                x, y = flip.random(x, m), flip.random(y, m)
            with _autocast(device, cfg.precision):
                pred = model(x).float()
            loss = torch.linalg.vector_norm(pred - y, dim=-1).mean()  # MPJPE, metres
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * idx.shape[0]
            count += idx.shape[0]
        sched.step()
        save_checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "kind": "lifter", "version": __version__,
                               "config": cfg_dict, "epoch": epoch, "model": model.state_dict(),
                               "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                               "rng": _rng_state(gen)})
        loss_v = float(total) / max(count, 1)
        if not math.isfinite(loss_v):
            raise HarnessError(f"{ckpt}: lifter loss became {loss_v} at epoch {epoch + 1}; last good checkpoint kept")
        if progress:
            progress({"stage": "lifter", "epoch": epoch + 1, "epochs": cfg.lifter_epochs, "loss": loss_v,
                      "seconds": time.perf_counter() - t0})
    preds = {}
    for split in ("train", "test"):
        dd = DeviceData.from_poseset(data[split], device)
        preds[split] = lifter_predict(model, dd.pose_2d, flip, cfg.eval_batch_size, cfg.precision, device,
                                      test_flip=(split == "test")).cpu().numpy().astype(np.float32)
    with atomic_path(pred_path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **preds)
    return preds


# ------------------------------------------------------------------------------------------ noise
def build_noise_for(cfg: Config, data: dict[str, PoseSet], lifter_preds: dict[str, np.ndarray], out: Path):
    """The training-noise model; a GMM fit is cached beside the shared lifter."""
    from harness.noise import GaussianNoise, GMMNoise

    J = data["train"].num_joints
    if cfg.noise == "gaussian":
        return GaussianNoise(num_joints=J)
    from harness.locks import folder_lock

    path = lifter_dir(cfg, out) / f"gmm-k{cfg.gmm_max_components}-n{cfg.gmm_max_samples}.json"
    with folder_lock(path.parent):
        gmm = GMMNoise.load(path) if path.exists() else _fit_gmm(cfg, data, lifter_preds, path)
    gmm.scale = gmm_scale(cfg)
    return gmm


def gmm_scale(cfg: Config) -> float:
    """``1 / sqrt(1 - abar_K)`` at the first inference timestep K (released: t = 6, about 30.4),
    so that training's ``x_K`` is the ground truth plus one fitted residual (see
    :class:`harness.noise.GMMNoise`); 1 with ``gmm_scale_to_start`` off (raw residuals)."""
    if not cfg.gmm_scale_to_start:
        return 1.0
    from harness.diffusion import DDIMScheduler

    sched = DDIMScheduler(beta_start=cfg.beta_start, beta_end=cfg.beta_end, num_train_timesteps=cfg.num_timesteps)
    k = sched.timesteps(cfg.test_timesteps, cfg.test_num_diffusion_timesteps)[0]
    return 1.0 / math.sqrt(1.0 - sched.alpha_bar(k))


def _fit_gmm(cfg: Config, data: dict[str, PoseSet], lifter_preds: dict[str, np.ndarray], path: Path):
    from harness.noise import GMMNoise

    train = data["train"]
    if "train" not in lifter_preds:
        raise DataError(f"{cfg.initial_3d}: the GMM noise fit needs initial 3D for every training frame")
    gt_2d = train.meta.get("pose_2d_gt")
    d2d = (train.pose_2d - gt_2d) if gt_2d is not None else np.zeros_like(train.pose_2d)
    d3d = lifter_preds["train"] - train.pose_3d
    residuals = np.concatenate([d2d, d3d], axis=-1)
    gmm = GMMNoise.fit(residuals, max_components=cfg.gmm_max_components, seed=cfg.seed,
                       max_samples=cfg.gmm_max_samples)
    gmm.save(path)
    return gmm


# --------------------------------------------------------------------------------------- denoiser
def run_name(cfg: Config) -> str:
    return f"{cfg.benchmark}-{cfg.variant}-{cfg.noise}-seed{cfg.seed}-{cfg.hash()}"


class Sampler:
    """DDIM inference from ``x_K = [2D, lifter 3D]`` with flip averaging."""

    def __init__(self, cfg: Config, model: torch.nn.Module, flip: Flip, device: torch.device):
        from harness.diffusion import DDIMScheduler

        self.cfg, self.model, self.flip, self.device = cfg, model, flip, device
        self.sched = DDIMScheduler(beta_start=cfg.beta_start, beta_end=cfg.beta_end, num_train_timesteps=cfg.num_timesteps)
        self.seq = self.sched.timesteps(cfg.test_timesteps, cfg.test_num_diffusion_timesteps)

    def refine(self, pose_2d: torch.Tensor, pose_3d: torch.Tensor, start_noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        x_K = torch.cat([pose_2d, pose_3d], dim=-1)
        if start_noise is not None:
            a = self.sched.alpha_bar(self.seq[0])
            x_K = x_K + math.sqrt(1.0 - a) * start_noise
        fn = lambda x, t: self.model(x, t, pose_2d)  # noqa: E731
        with _autocast(self.device, self.cfg.precision):
            out = self.sched.sample(fn, x_K, self.seq, eta=self.cfg.eta, generator=generator).float()
        xyz = out[..., 2:]
        return xyz - xyz[:, :1]

    @torch.no_grad()
    def __call__(self, pose_2d: torch.Tensor, lifter_3d: torch.Tensor, start_noise=None, generator=None,
                 flip_noise=None) -> torch.Tensor:
        self.model.eval()
        y = self.refine(pose_2d, lifter_3d, start_noise, generator)
        yf = self.refine(self.flip(pose_2d), self.flip(lifter_3d), flip_noise, generator)
        return 0.5 * (y + self.flip(yf))


def train_denoiser(cfg: Config, data: dict[str, PoseSet], noise_model, run_dir: Path, device: torch.device,
                   progress: ProgressFn | None = None) -> torch.nn.Module:
    """Train (or resume) the denoiser; returns the EMA model."""
    from harness.diffusion import DDIMScheduler, antithetic_timesteps, noise_prediction_loss
    from harness.variants import build_variant

    cfg_dict = cfg.to_dict()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    model = build_variant(cfg).to(device)
    ema = EMA(model, cfg.ema_rate, warmup=cfg.ema_warmup)
    # On CUDA the fused Adam kernel (same update) replaces ~10 launches per parameter tensor.
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True if device.type == "cuda" else None)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_decay_every, gamma=cfg.lr_gamma)
    diffusion = DDIMScheduler(beta_start=cfg.beta_start, beta_end=cfg.beta_end, num_train_timesteps=cfg.num_timesteps)
    train = DeviceData.from_poseset(data["train"], device)
    flip = Flip(train.pose_2d.shape[1], device=device)
    ckpt = run_dir / "checkpoint.pt"
    start = 0
    if ckpt.exists():
        st = load_checkpoint(ckpt, "denoiser", cfg_dict)
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"], st.get("ema_updates", 0))
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        _set_rng_state(gen, st["rng"])
        start = st["epoch"] + 1
    n, T = len(train), cfg.num_timesteps
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen, device=device)
        total, count = torch.zeros((), device=device), 0
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            b = idx.shape[0]
            x2d, y3d = train.pose_2d[idx], train.pose_3d[idx]
            if cfg.flip_augment:
                m = torch.rand(b, generator=gen, device=device) < 0.5
                x2d, y3d = flip.random(x2d, m), flip.random(y3d, m)
            x0 = torch.cat([x2d, y3d], dim=-1)
            eps = noise_model.sample(b, generator=gen, device=device)
            t = antithetic_timesteps(b, T, generator=gen, device=device)
            x_t = diffusion.q_sample(x0, t, eps)
            with _autocast(device, cfg.precision):
                eps_pred = model(x_t, t, x2d).float()
            loss = noise_prediction_loss(eps_pred, eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            ema.update(model)
            total += loss.detach() * b
            count += b
        sched.step()
        loss_v = float(total) / max(count, 1)
        if not math.isfinite(loss_v):
            raise HarnessError(f"{run_dir}: training loss became {loss_v} at epoch {epoch + 1}; "
                               "stopped, last good checkpoint kept")
        if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
            save_checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "kind": "denoiser", "version": __version__,
                                   "config": cfg_dict, "epoch": epoch, "model": model.state_dict(),
                                   "ema": ema.state_dict(), "ema_updates": ema.num_updates, "optimizer": opt.state_dict(),
                                   "scheduler": sched.state_dict(), "rng": _rng_state(gen),
                                   "noise": noise_model.to_dict()})
        if progress:
            progress({"stage": "denoiser", "epoch": epoch + 1, "epochs": cfg.epochs, "loss": loss_v,
                      "seconds": time.perf_counter() - t0})
    model.load_state_dict(ema.state_dict())
    return model


# ------------------------------------------------------------------------------------- evaluation
def evaluate(cfg: Config, model: torch.nn.Module, data: dict[str, PoseSet], lifter_test: np.ndarray,
             noise_model, device: torch.device) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics of the refined and the lifter's poses on the test split, and per-frame errors (mm)."""
    from harness import metrics as M

    test = data["test"]
    dd = DeviceData.from_poseset(test, device)
    lift = torch.from_numpy(lifter_test).to(device)
    flip = Flip(test.num_joints, device=device)
    sampler = Sampler(cfg, model, flip, device)
    B = cfg.eval_batch_size
    preds = _predict_pairs(lambda a, b: sampler(a, b), dd.pose_2d, lift, B).cpu().numpy()
    gt_mm = test.pose_3d.astype(np.float64) * 1000.0
    out: dict[str, Any] = {}
    per_frame: dict[str, np.ndarray] = {}
    hyp = None
    if cfg.hypotheses > 1:
        gen = torch.Generator(device=device).manual_seed(cfg.seed + 2)
        hs = []
        for _ in range(cfg.hypotheses):
            def one(a, b):
                e1 = noise_model.sample(a.shape[0], generator=gen, device=device)
                e2 = noise_model.sample(a.shape[0], generator=gen, device=device)
                return sampler(a, b, start_noise=e1, flip_noise=e2)
            hs.append(_predict_pairs(one, dd.pose_2d, lift, B).cpu().numpy())
        hyp = np.stack(hs, 0)  # (H, N, J, 3)
    for name, pred in (("diffusion", preds), ("lifter", lifter_test)):
        pred_mm = pred.astype(np.float64) * 1000.0
        per_frame[f"{name}_p1"] = M.mpjpe_per_frame(pred_mm, gt_mm).astype(np.float32)
        per_frame[f"{name}_p2"] = M.p_mpjpe_per_frame(pred_mm, gt_mm).astype(np.float32)
        out[name] = _summarise(cfg, test, pred_mm, gt_mm, per_frame[f"{name}_p1"], per_frame[f"{name}_p2"])
    if hyp is not None:
        hyp_mm = hyp.astype(np.float64) * 1000.0
        mean_mm = hyp_mm.mean(0)
        errs = np.stack([M.mpjpe_per_frame(h, gt_mm) for h in hyp_mm], 0)
        best = hyp_mm[errs.argmin(0), np.arange(hyp_mm.shape[1])]
        for name, pred_mm in ((f"hyp{cfg.hypotheses}_mean", mean_mm), (f"hyp{cfg.hypotheses}_best", best)):
            p1 = M.mpjpe_per_frame(pred_mm, gt_mm)
            p2 = M.p_mpjpe_per_frame(pred_mm, gt_mm)
            out[name] = _summarise(cfg, test, pred_mm, gt_mm, p1, p2)
    # A few test poses for figures: evenly spaced frames, inputs and outputs in metres.
    pick = np.linspace(0, len(test) - 1, num=min(NUM_SAMPLE_POSES, len(test))).astype(np.int64)
    per_frame["sample_index"] = pick
    per_frame["sample_pose_2d"] = test.pose_2d[pick]
    per_frame["sample_gt_3d"] = test.pose_3d[pick]
    per_frame["sample_lifter_3d"] = lifter_test[pick]
    per_frame["sample_diffusion_3d"] = preds[pick]
    per_frame["subject"] = test.subject.astype(str)
    per_frame["action"] = test.action.astype(str)
    per_frame["sequence"] = test.sequence.astype(str)
    per_frame["camera"] = test.camera
    per_frame["frame"] = test.frame
    per_frame["valid"] = test.valid
    return out, per_frame


def _predict_pairs(fn, a: torch.Tensor, b: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([fn(a[i:i + batch], b[i:i + batch]) for i in range(0, a.shape[0], batch)], 0)


def _summarise(cfg: Config, test: PoseSet, pred_mm, gt_mm, p1, p2) -> dict[str, Any]:
    from harness import metrics as M

    valid = test.valid.astype(bool)
    if cfg.benchmark == "h36m":
        return {"p1": M.h36m_per_action(p1, test.action), "p2": M.h36m_per_action(p2, test.action),
                "frames": int(len(test))}
    summ = M.mpi3dhp_summary(pred_mm, gt_mm, test.sequence, valid)
    summ["frames"] = int(valid.sum())
    return summ


# ------------------------------------------------------------------------------------------- runs
def is_done(cfg: Config, out: Path) -> bool:
    """True when the run's metrics exist for exactly this resolved config."""
    path = Path(out) / run_name(cfg) / "metrics.json"
    if not path.exists():
        return False
    try:
        old = json.loads(path.read_text()).get("config", {})
    except (OSError, json.JSONDecodeError):
        return False
    mine = cfg.to_dict()
    return all(old.get(k) == mine[k] for k in mine if k not in Config.NOT_HASHED)


def run(cfg: Config, out: Path, progress: ProgressFn | None = None, data: dict[str, PoseSet] | None = None,
        blocking: bool = True) -> Path:
    """One variant x noise x benchmark x seed: lifter (shared), noise fit, denoiser, evaluation.

    Holds a lock on the run folder (``blocking=False`` raises :class:`harness.locks.Busy` when another
    process has it); a finished run with the same config is not redone."""
    from harness.locks import folder_lock

    run_dir = Path(out) / run_name(cfg)
    with folder_lock(run_dir, blocking=blocking):
        if is_done(cfg, out):
            return run_dir
        return _run(cfg, Path(out), run_dir, progress, data)


def _run(cfg: Config, out: Path, run_dir: Path, progress: ProgressFn | None, data: dict[str, PoseSet] | None
         ) -> Path:
    t_start = time.perf_counter()
    device = select_device(cfg.device)
    write_json(run_dir / "config.json", cfg.to_dict())
    if data is None:
        data = load_data(cfg)
    lifter_preds = train_lifter(cfg, data, out, device, progress)
    noise_model = build_noise_for(cfg, data, lifter_preds, out)
    write_json(run_dir / "noise.json", noise_model.to_dict())
    model = train_denoiser(cfg, data, noise_model, run_dir, device, progress)
    if progress:
        progress({"stage": "eval"})
    metrics, per_frame = evaluate(cfg, model, data, lifter_preds["test"], noise_model, device)
    with atomic_path(run_dir / "per_frame.npz", suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **per_frame)
    result = {
        "harness_version": __version__, "run": run_dir.name, "config": cfg.to_dict(), "seed": cfg.seed,
        "git_commit": git_commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(device), "device": str(device), "wall_time_s": round(time.perf_counter() - t_start, 2),
        "data": {"synthetic": bool(data["train"].meta.get("synthetic", cfg.data_root is None)),
                 "train_frames": len(data["train"]),
                 "test_frames": len(data["test"])},
        "metrics": metrics,
    }
    write_json(run_dir / "metrics.json", result)
    return run_dir


def evaluate_run(run_dir: Path, device: str | None = None, progress: ProgressFn | None = None,
                 precision: str | None = None) -> dict[str, Any]:
    """Re-evaluate a finished run from its folder (config + checkpoint); rewrites metrics.json.

    ``precision`` other than the run's own runs the denoiser's sampler in that precision (the
    shared lifter's predictions stay the run's) and writes ``metrics-<precision>.json`` beside
    ``metrics.json`` instead, leaving the run's own results as they are."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run folder not found")
    cfg_d = read_json(run_dir / "config.json")
    if not isinstance(cfg_d, dict):
        raise DataError(f"{run_dir / 'config.json'}: expected a JSON object")
    cfg = config_from_dict(cfg_d, source=str(run_dir / "config.json"))
    if device:
        cfg = cfg.replace(device=device)
    dev = select_device(cfg.device)
    eval_cfg = validate(cfg.replace(precision=precision), source="--precision") if precision else cfg
    st = load_checkpoint(run_dir / "checkpoint.pt", "denoiser", cfg.to_dict())
    if st["epoch"] + 1 < cfg.epochs:
        raise DataError(f"{run_dir / 'checkpoint.pt'}: training stopped at epoch {st['epoch'] + 1} of "
                        f"{cfg.epochs}; rerun `harness train` to finish it")
    from harness.noise import noise_from_dict
    from harness.variants import build_variant

    model = build_variant(cfg).to(dev)
    model.load_state_dict(st["ema"])
    noise_model = noise_from_dict(st["noise"])
    data = load_data(cfg)
    out = run_dir.parent
    lifter_preds = train_lifter(cfg, data, out, dev, progress)
    metrics, per_frame = evaluate(eval_cfg, model, data, lifter_preds["test"], noise_model, dev)
    prev = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").exists() else {}
    prev.update({"metrics": metrics, "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "device": str(dev)})
    if eval_cfg.precision != cfg.precision:
        prev["eval_precision"] = eval_cfg.precision
        path = run_dir / f"metrics-{eval_cfg.precision}.json"
        write_json(path, prev)
        prev["path"] = str(path)
        return prev
    write_json(run_dir / "metrics.json", prev)
    with atomic_path(run_dir / "per_frame.npz", suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **per_frame)
    return prev
