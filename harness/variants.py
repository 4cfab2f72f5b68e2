"""Variant and noise registries, declared in ``variants/variants.yaml``.

``VARIANTS`` maps a variant name to a builder ``(cfg) -> nn.Module`` (the denoiser); ``NOISES``
maps a noise name to its description (the noise models themselves live in :mod:`harness.noise`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config import VARIANTS_DIR, load_yaml
from harness.errors import ConfigError
from harness.registry import Registry

VARIANTS: Registry = Registry("variant")
NOISES: Registry = Registry("noise")
VARIANT_INFO: dict[str, dict[str, Any]] = {}


def _model_name(cce: bool, cag: bool) -> str:
    return {(False, False): "baseline", (True, False): "cce", (False, True): "cag", (True, True): "full"}[(cce, cag)]


def _make_builder(model_name: str):
    def build(cfg) -> Any:
        from harness.models import build_denoiser

        return build_denoiser(model_name, hid_dim=cfg.hid_dim, num_layers=cfg.num_layers, n_head=cfg.n_head,
                              dropout=cfg.dropout)

    return build


def load_variants(path: Path | None = None) -> None:
    path = Path(path) if path else VARIANTS_DIR / "variants.yaml"
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
        VARIANTS.register(str(name), _make_builder(_model_name(cce, cag)))
        VARIANT_INFO[str(name)] = {"cce": cce, "cag": cag, "description": str(body.get("description", ""))}
    for name, desc in data["noises"].items():
        NOISES.register(str(name), str(desc))


load_variants()


def build_variant(cfg) -> Any:
    return VARIANTS.get(cfg.variant, "--variant")(cfg)
