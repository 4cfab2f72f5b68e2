"""Variant and noise registries, declared in ``harness/configs/variants.yaml``.

The one place variant and noise names are written. ``VARIANTS`` maps a variant name to its switches
``{"cce": bool, "cag": bool, "description": str}`` (:func:`harness.models.build_denoiser` builds the
denoiser from them); ``NOISES`` maps a noise name to its description (the noise models themselves
live in :mod:`harness.noise`). A miss lists the valid names. This module imports no model code.
"""

from __future__ import annotations

from pathlib import Path

from harness.configs import CONFIG_DIR, load_yaml
from harness.errors import ConfigError
from harness.registry import Registry

VARIANTS: Registry = Registry("variant")
NOISES: Registry = Registry("noise")
# Noises that need particular input (name -> what), e.g. ``kernels``: ``--keypoints <name>_gmm``;
# left out of the default ablation grid (:data:`GRID_NOISES`).
NOISE_NEEDS: dict[str, str] = {}


def load_variants(path: Path | None = None) -> None:
    path = Path(path) if path else CONFIG_DIR / "variants.yaml"
    data = load_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("variants"), dict) or not isinstance(data.get("noises"), dict):
        raise ConfigError(f"{path}: expected mappings 'variants' and 'noises'")
    for name, body in data["variants"].items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: variant '{name}' must be a mapping")
        extra = set(body) - {"cce", "cag", "description"}
        if extra:
            raise ConfigError(f"{path}: variant '{name}' has unknown key '{sorted(extra)[0]}'; valid: cce, cag, description")
        cce, cag = bool(body.get("cce", False)), bool(body.get("cag", False))
        VARIANTS.register(str(name), {"cce": cce, "cag": cag, "description": str(body.get("description", ""))})
    for name, desc in data["noises"].items():
        if isinstance(desc, dict):  # {description, needs}: a noise that runs only on some data
            extra = set(desc) - {"description", "needs"}
            if extra:
                raise ConfigError(f"{path}: noise '{name}' has unknown key '{sorted(extra)[0]}'; valid: description, needs")
            if desc.get("needs"):
                NOISE_NEEDS[str(name)] = str(desc["needs"])
            desc = desc.get("description", "")
        NOISES.register(str(name), str(desc))


load_variants()
GRID_NOISES = tuple(n for n in NOISES.names() if n not in NOISE_NEEDS)  # the default ablation grid's

