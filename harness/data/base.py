"""The in-memory form every loader returns: flat per-frame arrays, H36M joint order (the 17 joints,
or 16 without Neck/Nose for 16-joint 2D files; ``meta["parents"]`` / :attr:`PoseSet.parents`).

Loaders (H36M, 3DHP, synthetic files read through the same loaders) turn files into one
:class:`PoseSet` per split. Everything downstream (cache, training, evaluation, metrics
aggregation) works on these arrays only.

Conventions
- ``pose_2d``: (N, J, 2) float32, screen coordinates normalised to [-1, 1] by image width
  (VideoPose3D's ``normalize_screen_coordinates``: ``x / w * 2 - [1, h / w]``).
- ``pose_3d``: (N, J, 3) float32, camera frame, metres, root-relative (joint 0 is exactly 0).
- ``subject``/``action``/``sequence``: (N,) str arrays. For H36M ``action`` is the action name
  without its trailing number ("Walking 1" -> "Walking") and ``sequence`` the original name
  ("Walking 1"); for 3DHP ``action`` is the scene (GS / noGS / Outdoor) and ``sequence`` "TS1".."TS6".
- ``camera``: (N,) int16 camera index (0..3 for H36M; 3DHP train camera id; 0 for 3DHP test).
- ``valid``: (N,) bool; frames with ``valid == False`` are kept but excluded from metrics (3DHP).
- ``frame``: (N,) int32 index of the frame inside its sequence.
- ``meta`` may carry per-sample arrays (:data:`PER_SAMPLE_META`, first axis N) that
  :meth:`PoseSet.subset` selects with the rows: ``pose_2d_gt`` (N, J, 2), the GT 2D beside a
  detector's, and ``gmm_2d`` (N, J, K, 5) float32, DiffPose's per-frame 2D kernels
  ``[weight, mu_u, mu_v, sigma_u, sigma_v]`` (mu normalised like ``pose_2d``; ``*_gmm`` keypoints).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


PER_SAMPLE_META = ("pose_2d_gt", "gmm_2d", "gmm_2d_gt")


@dataclass
class PoseSet:
    pose_2d: np.ndarray
    pose_3d: np.ndarray
    subject: np.ndarray
    action: np.ndarray
    sequence: np.ndarray
    camera: np.ndarray
    frame: np.ndarray
    valid: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.pose_3d.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.pose_3d.shape[1])

    @property
    def parents(self) -> tuple[int, ...]:
        """The skeleton the models are built on: ``meta["parents"]`` (the H36M loader's), else the
        H36M-order layout of :attr:`num_joints` (:func:`harness.skeleton.h36m_layout`)."""
        p = self.meta.get("parents")
        if p is not None and len(p) == self.num_joints:
            return tuple(int(v) for v in p)
        from harness.skeleton import h36m_layout

        return h36m_layout(self.num_joints)[0]

    def subset(self, mask: np.ndarray) -> "PoseSet":
        meta = dict(self.meta)
        for key in PER_SAMPLE_META:
            arr = meta.get(key)
            if isinstance(arr, np.ndarray) and arr.shape[:1] == (len(self),):
                meta[key] = arr[mask]
        return PoseSet(
            pose_2d=self.pose_2d[mask],
            pose_3d=self.pose_3d[mask],
            subject=self.subject[mask],
            action=self.action[mask],
            sequence=self.sequence[mask],
            camera=self.camera[mask],
            frame=self.frame[mask],
            valid=self.valid[mask],
            meta=meta,
        )

    @staticmethod
    def concat(parts: list["PoseSet"], meta: dict | None = None) -> "PoseSet":
        if not parts:
            raise ValueError("PoseSet.concat needs at least one part")
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts], axis=0)  # noqa: E731
        return PoseSet(
            pose_2d=cat("pose_2d").astype(np.float32, copy=False),
            pose_3d=cat("pose_3d").astype(np.float32, copy=False),
            subject=cat("subject"),
            action=cat("action"),
            sequence=cat("sequence"),
            camera=cat("camera").astype(np.int16, copy=False),
            frame=cat("frame").astype(np.int32, copy=False),
            valid=cat("valid").astype(bool, copy=False),
            meta=dict(meta if meta is not None else parts[0].meta),
        )


from harness.protocols import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS  # noqa: E402,F401
