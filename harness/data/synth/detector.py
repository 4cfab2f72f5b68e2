"""The synthetic 2D detector's error model: per-joint Gaussian error (part of it temporally
smooth), a heavy-tailed share of "hard" entries, outliers and left/right limb swaps.

Calibration. The defaults are set so the error of the synthetic detections, ``||det - gt_2d||`` per
(frame, joint) in pixels, matches a real detector: Stacked Hourglass on Human3.6M's test subjects
(S9, S11), measured at median 9.8 px, 95th percentile 48 px and 12.7% of joints beyond 30 px.
Measured on the default synthetic H36M (``ensure_synth("h36m", seed=0)``: its ``synth_det``
detections, stored on a 1/8 px grid, against the GT 2D the loader derives from 3D + cameras, all
frames and cameras), these defaults give

    test  (S9, S11):              median 9.89 px, p95 48.4 px, 12.89% beyond 30 px
    train (S1, S5, S6, S7, S8):   median 9.93 px, p95 49.2 px, 13.07% beyond 30 px

(the former model, Gaussian + 1.5% outliers + 1% swaps, gave median 5.3 px, p95 15.4 px, 1.4%).
How the figures arise: the core error is a per-joint Gaussian (torso 4.5 px per axis, extremities
worse, wrists 10 px); 30% of the entries, in episodes of a few frames (occluded or ambiguous
joints), have 3.2 times that error, which makes the distribution heavy-tailed (a Gaussian scale
mixture) and supplies most of the errors beyond 30 px; 2.5% of the entries are outliers displaced
20-100 px; 2% of the frames have a left/right limb swap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Per-joint standard deviation (px, each axis) of the detector error, H36M order.
DEFAULT_SIGMA = (4.5, 6.0, 7.0, 9.0, 6.0, 7.0, 9.0, 4.5, 4.5, 4.5, 4.5, 5.5, 8.5, 10.0, 5.5, 8.5, 10.0)
# Left/right groups a swap exchanges: whole legs, lower legs, whole arms, forearms.
SWAP_GROUPS = (((4, 5, 6), (1, 2, 3)), ((5, 6), (2, 3)), ((11, 12, 13), (14, 15, 16)), ((12, 13), (15, 16)))


@dataclass(frozen=True)
class DetectorNoise:
    """The error model of the synthetic 2D detector."""
    sigma: tuple = DEFAULT_SIGMA     # px per joint, per axis
    temporal: float = 0.5            # share of the variance that is temporally smooth
    smooth_frames: float = 2.0       # Gaussian kernel sigma (frames) of the smooth part
    hard_rate: float = 0.3           # fraction of (frame, joint) entries in a "hard" episode
    hard_scale: float = 3.2          # their error is hard_scale times the joint's usual error
    hard_max_len: int = 9            # hard episodes last 1..hard_max_len frames (per joint)
    outlier_rate: float = 0.025      # fraction of (frame, joint) entries that are outliers
    outlier_px: tuple = (20.0, 100.0)  # outlier displacement range, px
    swap_rate: float = 0.02          # fraction of frames with a left/right limb swap
    swap_max_len: int = 3            # swaps last 1..swap_max_len frames
    swap_weights: tuple = (0.4, 0.2, 0.2, 0.2)  # over SWAP_GROUPS


def _episodes(rng: np.random.Generator, shape: tuple, rate: float, max_len: int) -> np.ndarray:
    """Bool mask over axis 0 of ``shape``: runs of 1..max_len entries starting at random, covering
    about ``rate`` of the entries (runs that meet merge)."""
    F = shape[0]
    # P(an entry is covered) = 1 - prod_d (1 - p P(len > d)) ~ 1 - exp(-p E[len]): choose p for ``rate``
    starts = rng.random(shape) < -np.log1p(-rate) / ((1 + max_len) / 2.0)
    lens = rng.integers(1, max_len + 1, shape)
    # cover[f] = some start s <= f with s + len[s] > f: mark each run's end, sweep with a running max
    end = np.where(starts, np.arange(F).reshape((F,) + (1,) * (len(shape) - 1)) + lens, 0)
    return np.maximum.accumulate(end, axis=0) > np.arange(F).reshape((F,) + (1,) * (len(shape) - 1))


def add_detector_noise(gt: np.ndarray, rng: np.random.Generator, noise: DetectorNoise = DetectorNoise()):
    """Detections from ground-truth 2D ``gt`` (F, 17, 2) px. Returns ``(det, outlier, swapped)``:
    det (F, 17, 2) float64, outlier (F, 17) bool (entries replaced by outliers, before swapping),
    swapped (F,) bool (frames whose left/right limbs were exchanged)."""
    gt = np.asarray(gt, dtype=np.float64)
    F, J, _ = gt.shape
    sigma = np.asarray(noise.sigma, dtype=np.float64).reshape(1, J, 1)
    e = rng.standard_normal((F, J, 2))
    if noise.temporal > 0:
        h = max(1, int(np.ceil(3 * noise.smooth_frames)))
        k = np.exp(-0.5 * (np.arange(-h, h + 1) / noise.smooth_frames) ** 2)
        k /= np.sqrt(np.sum(k**2))
        wn = rng.standard_normal((F + 2 * h, J, 2))
        smooth = np.zeros((F, J, 2))
        for i, ki in enumerate(k):
            smooth += ki * wn[i:i + F]
        e = np.sqrt(1.0 - noise.temporal) * e + np.sqrt(noise.temporal) * smooth
    if noise.hard_rate > 0:
        hard = _episodes(rng, (F, J), noise.hard_rate, noise.hard_max_len)
        e = np.where(hard[..., None], noise.hard_scale * e, e)
    det = gt + sigma * e
    outlier = rng.random((F, J)) < noise.outlier_rate
    ang = rng.uniform(0.0, 2 * np.pi, (F, J))
    mag = rng.uniform(*noise.outlier_px, (F, J))
    off = np.stack([np.cos(ang), np.sin(ang)], axis=-1) * mag[..., None]
    det = np.where(outlier[..., None], gt + off, det)
    mean_len = (1 + noise.swap_max_len) / 2.0
    starts = rng.random(F) < noise.swap_rate / mean_len
    lens = rng.integers(1, noise.swap_max_len + 1, F)
    groups = rng.choice(len(SWAP_GROUPS), F, p=np.asarray(noise.swap_weights) / np.sum(noise.swap_weights))
    swapped = np.zeros(F, dtype=bool)
    for i in np.flatnonzero(starts):
        idx = np.arange(i, min(F, i + lens[i]))
        idx = idx[~swapped[idx]]
        if idx.size == 0:
            continue
        a, b = (list(g) for g in SWAP_GROUPS[groups[i]])
        det[np.ix_(idx, a + b)] = det[np.ix_(idx, b + a)]
        swapped[idx] = True
    return det, outlier, swapped
