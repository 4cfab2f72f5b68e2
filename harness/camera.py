"""The Human3.6M camera model: extrinsics, intrinsics with radial and tangential distortion,
world -> camera -> pixel projection, and screen normalisation.

After VideoPose3D's ``common/camera.py``; the numbers come from a ``cameras.h5`` file (groups
``subject{N}/camera{1..4}`` with ``R``, ``T`` (mm, camera centre in world), ``f``, ``c`` (px),
``k`` (radial k1 k2 k3), ``p`` (tangential p1 p2) and ``Name`` (camera id as character codes)).

Units: world and camera coordinates in metres, pixels in px.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataError

# Image sizes (width, height) of the four H36M cameras; the rest of the calibration is in cameras.h5.
H36M_CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
# As VideoPose3D's h36m_dataset.py: cameras 1 and 4 (54138969, 60457274) are 1002 px high.
H36M_RESOLUTION = {"54138969": (1000, 1002), "55011271": (1000, 1000),
                   "58860488": (1000, 1000), "60457274": (1000, 1002)}


@dataclass(frozen=True)
class Camera:
    id: str
    R: np.ndarray  # (3, 3) world -> camera is R^T (X - T)
    T: np.ndarray  # (3,) camera centre in world coordinates, metres
    f: np.ndarray  # (2,) focal length, px
    c: np.ndarray  # (2,) principal point, px
    k: np.ndarray  # (3,) radial distortion k1 k2 k3
    p: np.ndarray  # (2,) tangential distortion p1 p2 (cameras.h5 order)
    res_w: int
    res_h: int


def world_to_camera(X: np.ndarray, cam: Camera) -> np.ndarray:
    """World (..., 3) metres -> camera frame (..., 3) metres: R^T (X - T), for row vectors (X - T) @ R."""
    return (np.asarray(X, dtype=np.float64) - cam.T) @ cam.R


def camera_to_world(X: np.ndarray, cam: Camera) -> np.ndarray:
    """Inverse of :func:`world_to_camera`."""
    return np.asarray(X, dtype=np.float64) @ cam.R.T + cam.T


def project_to_2d(X: np.ndarray, cam: Camera) -> np.ndarray:
    """Camera frame (..., 3) metres -> pixels (..., 2), with H36M's distortion model.

    Exactly VideoPose3D's ``project_to_2d`` (which uses its own tangential order, the reverse of
    cameras.h5's ``p``): normalised coordinates clamped to [-1, 1], radial factor
    1 + k1 r^2 + k2 r^4 + k3 r^6, tangential term, then f * x + c.
    """
    X = np.asarray(X, dtype=np.float64)
    xx = np.clip(X[..., :2] / X[..., 2:3], -1.0, 1.0)
    r2 = np.sum(xx**2, axis=-1, keepdims=True)
    radial = 1.0 + cam.k[0] * r2 + cam.k[1] * r2**2 + cam.k[2] * r2**3
    p = cam.p[::-1]  # VideoPose3D's order
    tan = np.sum(p * xx, axis=-1, keepdims=True)
    xxx = xx * (radial + tan) + p * r2
    return cam.f * xxx + cam.c


def normalize_screen_coordinates(X: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pixels -> [-1, 1] by image width, keeping the aspect ratio: x / w * 2 - [1, h / w]."""
    return np.asarray(X) / w * 2 - np.array([1.0, h / w])


def image_coordinates(X: np.ndarray, w: int, h: int) -> np.ndarray:
    """Inverse of :func:`normalize_screen_coordinates`."""
    return (np.asarray(X) + np.array([1.0, h / w])) * w / 2


def _camera_id(name_codes: np.ndarray) -> str:
    return "".join(chr(int(round(v))) for v in np.asarray(name_codes).ravel())


def load_cameras_h5(path: str | Path, problems: list[str] | None = None) -> dict[str, list[Camera]]:
    """Read ``cameras.h5`` into ``{"S1": [Camera x4], ...}`` (cameras in file order camera1..4).

    Image size comes from an optional ``res`` dataset (w, h) in the camera group, else from the
    known H36M camera ids. Every camera must be one (:func:`harness.data.sanity.camera_problems`: R a
    rotation, focal length, principal point and image size finite and positive): the first that is
    not raises :class:`DataError`, or, with ``problems`` given, every such line is appended to it.
    """
    import h5py

    from harness.data.sanity import camera_problems

    path = Path(path)
    found: list[str] = []
    if not path.is_file():
        raise DataError(f"{path}: camera file not found")
    cams: dict[str, list[Camera]] = {}
    try:
        with h5py.File(path, "r") as f:
            for group in sorted(f.keys()):
                if not group.startswith("subject"):
                    continue
                subject = "S" + group[len("subject"):]
                lst = []
                for cname in sorted(f[group].keys(), key=lambda s: int(s[len("camera"):])):
                    g = f[group][cname]
                    cid = _camera_id(g["Name"][()])
                    if "res" in g:
                        w, h = (int(v) for v in np.asarray(g["res"][()]).ravel())
                    elif cid in H36M_RESOLUTION:
                        w, h = H36M_RESOLUTION[cid]
                    else:
                        raise DataError(f"{path}: {group}/{cname} (id {cid}) has no 'res' and is not an H36M camera")
                    vec = lambda key, n: np.asarray(g[key][()], dtype=np.float64).reshape(n)  # noqa: E731
                    cam = Camera(id=cid, R=np.asarray(g["R"][()], dtype=np.float64).reshape(3, 3),
                                 T=vec("T", 3) / 1000.0, f=vec("f", 2), c=vec("c", 2), k=vec("k", 3),
                                 p=vec("p", 2), res_w=w, res_h=h)
                    found += [f"{path}: {group}/{cname} (camera {cid}): {why}"
                              for why in camera_problems(cam.R, cam.T, cam.f, cam.c, cam.k, cam.p, w, h)]
                    lst.append(cam)
                cams[subject] = lst
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, OverflowError, RuntimeError) as e:
        # RuntimeError: h5py's for a corrupt file ("Unable to get group info (bad symbol table node ...)")
        raise DataError(f"{path}: not a valid cameras.h5 ({' '.join(str(e).split()) or type(e).__name__})") from None
    if not cams:
        raise DataError(f"{path}: no subject*/camera* groups found")
    if found:
        if problems is None:
            more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
            raise DataError(found[0] + more)
        problems.extend(found)
    return cams


def save_cameras_h5(path: str | Path, cams: dict[str, list[Camera]]) -> None:
    """Write cameras in the ``cameras.h5`` layout (used by the synthetic benchmark)."""
    import h5py

    with h5py.File(path, "w") as f:
        for subject, lst in cams.items():
            for i, cam in enumerate(lst, start=1):
                g = f.create_group(f"subject{subject[1:]}/camera{i}")
                g["R"] = cam.R
                g["T"] = (cam.T * 1000.0).reshape(3, 1)
                g["f"] = cam.f.reshape(2, 1)
                g["c"] = cam.c.reshape(2, 1)
                g["k"] = cam.k.reshape(3, 1)
                g["p"] = cam.p.reshape(2, 1)
                g["Name"] = np.array([float(ord(ch)) for ch in cam.id]).reshape(-1, 1)
                g["res"] = np.array([cam.res_w, cam.res_h], dtype=np.int64)
