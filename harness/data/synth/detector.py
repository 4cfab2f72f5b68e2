"""The synthetic 2D detector's error model: per-joint Gaussian error (part of it temporally
smooth), outliers and left/right limb swaps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Per-joint standard deviation (px, each axis) of the detector error, H36M order.
DEFAULT_SIGMA = (4.0, 3.5, 5.0, 7.0, 3.5, 5.0, 7.0, 4.5, 3.5, 3.0, 4.0, 3.0, 5.5, 8.0, 3.0, 5.5, 8.0)
# Left/right groups a swap exchanges: whole legs, lower legs, whole arms, forearms.
SWAP_GROUPS = (((4, 5, 6), (1, 2, 3)), ((5, 6), (2, 3)), ((11, 12, 13), (14, 15, 16)), ((12, 13), (15, 16)))


@dataclass(frozen=True)
class DetectorNoise:
    """The error model of the synthetic 2D detector."""
    sigma: tuple = DEFAULT_SIGMA     # px per joint, per axis
    temporal: float = 0.5            # share of the variance that is temporally smooth
    smooth_frames: float = 2.0       # Gaussian kernel sigma (frames) of the smooth part
    outlier_rate: float = 0.015      # fraction of (frame, joint) entries that are outliers
    outlier_px: tuple = (20.0, 60.0)  # outlier displacement range, px
    swap_rate: float = 0.01          # fraction of frames with a left/right limb swap
    swap_max_len: int = 3            # swaps last 1..swap_max_len frames
    swap_weights: tuple = (0.4, 0.2, 0.2, 0.2)  # over SWAP_GROUPS


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
