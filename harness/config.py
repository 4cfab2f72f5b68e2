"""One config dataclass with every default in one place (nanoGPT style), and the YAML files under
``harness/configs/`` (package data) that name variants and profiles.

A run's configuration is ``Config()`` updated by a recipe (``harness/configs/recipes.yaml``), a profile
(``harness/configs/profiles.yaml``, or a user's own file of the same schema, ``--profiles FILE``, whose
names add to and override the built-in ones), then by command-line options and ``--set key=value``
(:func:`parse_sets`: any field, typed by its annotation). The resolved config is plain data
(``asdict``), saved with every run (``config.json``) and hashed to identify it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.configs import CONFIG_DIR, load_yaml  # noqa: F401  (load_yaml re-exported)
from harness.errors import ConfigError
from harness.protocols import BENCHMARKS

DEVICES = ("auto", "cpu", "cuda")
# Cross-dataset training: benchmark -> the other training sets it may be trained on (config ``train_on``).
TRAIN_ON = {"3dhp": ("h36m",)}


@dataclass
class Config:
    # --- what -------------------------------------------------------------------------------
    variant: str = "full"            # baseline | cce | cag | full (harness/configs/variants.yaml)
    noise: str = "gaussian"          # gaussian | gmm | kernels (DiffPose's per-frame kernels: *_gmm keypoints)
    benchmark: str = "h36m"          # h36m | 3dhp
    train_on: str | None = None      # None: the benchmark's own training set; "h36m" with 3dhp (cross-dataset)
    data_root: str | None = None     # None: the synthetic benchmark the harness generates
    keypoints: str = "gt"            # H36M 2D input: gt, cpn_ft_h36m_dbb, sh_pt_mpii, ... (synthetic: synth_det)
    initial_3d: str | None = None    # npz of the user's own initial 3D (replaces the lifter stage)
    seed: int = 0
    device: str = "auto"             # auto | cpu | cuda
    profile: str = "custom"          # the profile name this config was resolved from (informative)
    recipe: str = "harness"          # harness | released | diffpose (harness/configs/recipes.yaml)
    # --- data -------------------------------------------------------------------------------
    train_stride: int = 1            # keep every n-th training frame (1: all)
    test_stride: int = 1             # keep every n-th test frame (1: all; the protocol)
    # --- initial lifter (GraFormer) ---------------------------------------------------------
    lifter_hid_dim: int = 96
    lifter_layers: int = 5
    lifter_heads: int = 4
    lifter_dropout: float = 0.25
    lifter_epochs: int = 50
    lifter_lr: float = 1e-3
    lifter_batch_size: int = 256
    # --- denoiser (cross-joint GCN / CCE / CAG) ---------------------------------------------
    hid_dim: int = 96
    num_layers: int = 5
    n_head: int = 4
    dropout: float = 0.25
    # --- diffusion (DiffPose's released defaults) -------------------------------------------
    beta_start: float = 1e-4
    beta_end: float = 1e-3
    num_timesteps: int = 51
    test_timesteps: int = 2          # DDIM steps at inference ...
    test_num_diffusion_timesteps: int = 12  # ... uniformly over this many: t = 6, then 0
    eta: float = 0.0
    hypotheses: int = 1              # >1: H starts drawn from the noise model (mean and best-of-H)
    gmm_max_components: int = 8
    gmm_max_samples: int = 20000
    gmm_scale_to_start: bool = True  # GMM draws x 1/sqrt(1 - abar_K): x_K = GT + one residual (noise.gmm_scale)
    # --- optimisation -----------------------------------------------------------------------
    epochs: int = 80
    batch_size: int = 1024
    lr: float = 1e-3
    lr_gamma: float = 0.9
    lr_decay_every: int = 60         # epochs
    grad_clip: float = 1.0
    ema_rate: float = 0.999
    ema_warmup: bool = True          # decay min(ema_rate, (1+n)/(10+n)) at update n (diffusers); False: constant
    flip_augment: bool = True
    # --- evaluation recipe (harness/configs/recipes.yaml sets these per source) ---------------
    test_flip: bool = True           # average the refinement with the flipped pose's (un-flipped)
    lifter_test_flip: bool = True    # average the lifter with its flipped input's; False: run it once
    eval_weights: str = "ema"        # ema | raw: the weights evaluated (the released code: raw, states[0])
    root_mode: str = "subtract"      # subtract: x - x_root; zero_root: the released in-place form (root := 0)
    train_keypoints: str | None = None  # None: the denoiser trains on the test 2D's kind; "gt": on GT 2D
    gmm_test_input: str = "heaviest"  # *_gmm keypoints' test 2D: heaviest kernel's mu | sample (one draw, seed)
    eval_batch_size: int = 4096
    checkpoint_every: int = 1        # epochs
    precision: str = "fp32"          # fp32 | bf16
    profiles_file: str | None = None  # --profiles FILE the profile was read from (None: the built-in file)
    compile: str = "off"             # off | default | graphs: the denoiser's step and sampler compiled (harness.train.step)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **kw: Any) -> "Config":
        return apply_overrides(self, kw, source="options")

    def hashed_dict(self, keys: list[str] | None = None) -> dict[str, Any]:
        """The fields :meth:`hash` covers (all, or ``keys``), as plain data."""
        d = self.to_dict()
        return {k: d[k] for k in (keys if keys is not None else d)
                if k not in self.NOT_HASHED and not (k in self.HASHED_WHEN_SET and d[k] is None)
                and not (k in self.HASHED_UNLESS_DEFAULT and d[k] == FIELD_DEFAULTS[k])}

    def hash(self, keys: list[str] | None = None) -> str:
        """12 hex digits of the sha256 of :meth:`hashed_dict` (the config alone; a run's folder is named
        by :func:`harness.identity.identity_hash`, which adds the data's content and the numerics)."""
        blob = json.dumps(self.hashed_dict(keys), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    # Fields that do not change what a run computes (where it ran, how often it saves).
    NOT_HASHED = ("device", "checkpoint_every", "eval_batch_size", "profile", "profiles_file")
    # Fields hashed only when set (not None), so that runs from before they existed keep their names.
    HASHED_WHEN_SET = ("train_on",)
    # Fields hashed only when they differ from their default, for the same reason (the recipe fields).
    HASHED_UNLESS_DEFAULT = ("recipe", "test_flip", "lifter_test_flip", "eval_weights", "root_mode",
                             "train_keypoints", "gmm_test_input", "compile")

    # Fields that decide the shared first stage (lifter): everything a lifter depends on.
    LIFTER_KEYS = ["benchmark", "train_on", "data_root", "keypoints", "initial_3d", "seed", "train_stride",
                   "lifter_hid_dim", "lifter_layers", "lifter_heads", "lifter_dropout", "lifter_epochs", "lifter_lr",
                   "lifter_batch_size", "flip_augment", "precision", "lifter_test_flip", "root_mode", "gmm_test_input"]

    def lifter_hash(self) -> str:
        return self.hash(self.LIFTER_KEYS)


FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(Config)}
FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Config)}
EVAL_WEIGHTS = ("ema", "raw")
ROOT_MODES = ("subtract", "zero_root")


def _field_kind(annotation: Any) -> tuple[str, bool]:
    """``(base type, optional)`` of a Config annotation (``"int"``, ``"str | None"``, ...): every field is
    int, float, bool or str, optionally None. Another type fails here, at import, so that whoever adds a
    tuple or list field also teaches :func:`_coerce` (and ``--set``) to parse it."""
    parts = [t.strip() for t in str(getattr(annotation, "__name__", annotation)).split("|")]
    optional = "None" in parts
    base = [t for t in parts if t != "None"]
    if len(base) != 1 or base[0] not in ("int", "float", "bool", "str"):
        raise TypeError(f"Config field type {annotation!r}: only int, float, bool or str (optionally | None)")
    return base[0], optional


FIELD_KINDS = {k: _field_kind(t) for k, t in FIELD_TYPES.items()}


def type_text(key: str) -> str:
    """What a field takes, in words: ``int``, ``float``, ``bool: true, false, 1 or 0``, ``str or none``."""
    base, optional = FIELD_KINDS[key]
    return (base if base != "bool" else "bool: true, false, 1 or 0") + (" or none" if optional else "")


def _coerce(key: str, value: Any, source: str) -> Any:
    """``value`` (YAML data, or a command line's text) as the type of field ``key``; a one-line
    ConfigError naming the key, the value and the expected type otherwise. Booleans are never taken
    for numbers (``epochs: true``), nor non-finite floats for floats."""
    base, optional = FIELD_KINDS[key]
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: '{key}' must not be empty")
    try:
        if base == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError(value)
        if isinstance(value, bool) and base in ("int", "float"):
            raise ValueError(value)
        if base == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base == "float":
            out = float(value)
            if not math.isfinite(out):
                raise ConfigError(f"{source}: '{key}' has an invalid value {value!r} (expected a finite float)")
            return out
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: '{key}' has an invalid value {value!r} (expected {type_text(key)})") from None


def validate(cfg: Config, source: str = "config") -> Config:
    """Range checks for every field a user can set; raises ConfigError naming the key."""
    def need(cond: bool, key: str, what: str) -> None:
        if not cond:
            raise ConfigError(f"{source}: '{key}' {what} (got {getattr(cfg, key)!r})")

    for key in ("epochs", "lifter_epochs"):
        need(getattr(cfg, key) >= 0, key, "must be >= 0")
    for key in ("batch_size", "lifter_batch_size", "eval_batch_size", "hid_dim", "lifter_hid_dim", "num_layers",
                "lifter_layers", "n_head", "lifter_heads", "train_stride", "test_stride", "test_timesteps",
                "test_num_diffusion_timesteps", "hypotheses", "gmm_max_components", "checkpoint_every",
                "num_timesteps", "lr_decay_every", "gmm_max_samples"):
        need(getattr(cfg, key) >= 1, key, "must be >= 1")
    for key in ("dropout", "lifter_dropout", "ema_rate", "lr_gamma"):
        need(0.0 <= getattr(cfg, key) < 1.0 or (key == "lr_gamma" and cfg.lr_gamma == 1.0), key, "must be in [0, 1)")
    for key in ("lr", "lifter_lr", "grad_clip", "beta_start", "beta_end"):
        need(getattr(cfg, key) > 0, key, "must be > 0")
    need(cfg.beta_start < cfg.beta_end, "beta_end", "must exceed beta_start")
    need(cfg.eta >= 0, "eta", "must be >= 0")
    need(cfg.test_num_diffusion_timesteps <= cfg.num_timesteps, "test_num_diffusion_timesteps",
         f"must be <= num_timesteps ({cfg.num_timesteps})")
    need(cfg.test_timesteps <= cfg.test_num_diffusion_timesteps, "test_timesteps",
         "must be <= test_num_diffusion_timesteps")
    need(cfg.hid_dim % cfg.n_head == 0, "hid_dim", f"must be a multiple of n_head ({cfg.n_head})")
    need(cfg.lifter_hid_dim % cfg.lifter_heads == 0, "lifter_hid_dim",
         f"must be a multiple of lifter_heads ({cfg.lifter_heads})")
    need(cfg.benchmark in BENCHMARKS, "benchmark", f"must be one of {', '.join(BENCHMARKS)}")
    if cfg.train_on == cfg.benchmark:  # the benchmark's own training set: the default, spelled out
        cfg = dataclasses.replace(cfg, train_on=None)
    other = TRAIN_ON.get(cfg.benchmark, ())
    need(cfg.train_on is None or cfg.train_on in other, "train_on",
         f"must be {' or '.join((f'{cfg.benchmark} (its own training set)',) + other)} with benchmark {cfg.benchmark}")
    need(cfg.device in DEVICES or cfg.device.startswith("cuda:"), "device", f"must be one of {', '.join(DEVICES)}")
    need(cfg.precision in ("fp32", "bf16"), "precision", "must be fp32 or bf16")
    need(cfg.compile in ("off", "default", "graphs"), "compile", "must be off, default or graphs")
    need(cfg.eval_weights in EVAL_WEIGHTS, "eval_weights", f"must be one of {', '.join(EVAL_WEIGHTS)}")
    need(cfg.root_mode in ROOT_MODES, "root_mode", f"must be one of {', '.join(ROOT_MODES)}")
    need(cfg.train_keypoints in (None, "gt"), "train_keypoints", "must be empty (the test 2D's kind) or gt")
    need(cfg.gmm_test_input in ("heaviest", "sample"), "gmm_test_input", "must be heaviest or sample")
    need(cfg.noise != "kernels" or cfg.keypoints.endswith("_gmm"), "noise",
         f"kernels needs --keypoints <name>_gmm (DiffPose's per-frame GMM 2D, data_2d_h36m_<name>_gmm.npz); "
         f"keypoints is '{cfg.keypoints}'")
    need(cfg.recipe in load_recipes(), "recipe", f"must be one of {', '.join(load_recipes())}")
    from harness.variants import NOISES, VARIANTS  # late: variants imports config

    VARIANTS.check(cfg.variant, f"{source}: variant")
    NOISES.check(cfg.noise, f"{source}: noise")
    return cfg


def apply_overrides(cfg: Config, overrides: dict[str, Any], source: str) -> Config:
    unknown = [k for k in overrides if k not in FIELD_TYPES]
    if unknown:
        raise ConfigError(f"{source}: unknown config key '{unknown[0]}'; valid keys: {', '.join(FIELD_TYPES)}")
    values = {k: _coerce(k, v, source) for k, v in overrides.items()}
    return dataclasses.replace(cfg, **values)


def parse_sets(items: Sequence[str], own_options: Mapping[str, str] | None = None,
               option: str = "--set") -> dict[str, Any]:
    """``["lr=2e-4", "flip_augment=false"]`` -> ``{"lr": 0.0002, "flip_augment": False}``.

    Each item is ``key=value`` with ``key`` a Config field; the value is parsed by the field's type
    (:func:`_coerce`: int, float such as ``2e-4``, bool ``true``/``false``/``1``/``0``, str; ``none``,
    ``null`` or nothing for a field that may be None). Refused, in one line: a key the command has its
    own option for (``own_options``: key -> option; one spelling per setting), naming that option; an
    unknown key, listing the keys that may be set; a bad value, naming the key, the value and the type;
    a key given twice with different values. Ranges are checked with the whole config
    (:func:`resolve_config` ``sets``)."""
    own = dict(own_options or {})
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{option} {item!r}: expected key=value (e.g. {option} lr=2e-4)")
        if key in own:
            raise ConfigError(f"{option} {key}: has its own option, use {own[key]}")
        if key not in FIELD_TYPES:
            valid = ", ".join(k for k in FIELD_TYPES if k not in own)
            raise ConfigError(f"{option}: unknown config key '{key}'; valid keys: {valid}")
        text = text.strip()
        value = _coerce(key, None if FIELD_KINDS[key][1] and text.lower() in ("", "none", "null") else text,
                        source=option)
        if key in out and out[key] != value:
            raise ConfigError(f"{option} {key}: given twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


def load_profiles(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """One profiles file (default: the built-in ``harness/configs/profiles.yaml``): name -> its
    overrides, every key a Config field of a valid type (checked); one-line errors naming the file."""
    path = Path(path) if path else CONFIG_DIR / "profiles.yaml"
    data = load_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'profiles' key")
    out: dict[str, dict[str, Any]] = {}
    for name, body in data["profiles"].items():
        body = body or {}
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: profile '{name}' must be a mapping")
        body = {k: v for k, v in body.items() if k != "description"}
        apply_overrides(Config(), body, source=f"{path}: profile '{name}'")  # checks keys and types
        out[str(name)] = body
    return out


def profile_files(user: Path | str | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Path]]:
    """``(profiles, file of each)``: the built-in profiles, then those of the user's file ``user``
    (``--profiles FILE``, the same schema), whose names add to and override the built-in ones."""
    builtin = CONFIG_DIR / "profiles.yaml"
    profiles = load_profiles()
    files = {name: builtin for name in profiles}
    if user is not None:
        try:
            mine = load_profiles(Path(user))
        except UnicodeDecodeError:
            raise ConfigError(f"{user}: not a text file (expected YAML with a 'profiles' key)") from None
        profiles = {**profiles, **mine}
        files.update({name: Path(user) for name in mine})
    return profiles, files


def check_profile_name(profile: str, user: Path | str | None = None, option: str = "--profile",
                       profiles: Mapping[str, Any] | None = None) -> None:
    """``profile`` is a built-in profile or one of ``user``'s file (:func:`profile_files`; ``profiles``:
    those, already read)."""
    if profiles is None:
        profiles, _ = profile_files(user)
    if profile not in profiles:
        raise ConfigError(f"{option}: unknown profile '{profile}'; valid: {', '.join(sorted(profiles))}")


_RECIPES: dict[str, dict[str, Any]] | None = None


def load_recipes(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """``harness/configs/recipes.yaml``: recipe name -> ``{"description", "values", "detected"}``, every
    key a Config field (checked); cached after the first read of the packaged file."""
    global _RECIPES
    if path is None and _RECIPES is not None:
        return _RECIPES
    src = Path(path) if path else CONFIG_DIR / "recipes.yaml"
    data = load_yaml(src)
    if not isinstance(data, dict) or not isinstance(data.get("recipes"), dict):
        raise ConfigError(f"{src}: expected a mapping with a 'recipes' key")
    out: dict[str, dict[str, Any]] = {}
    for name, body in data["recipes"].items():
        if not isinstance(body, dict) or not isinstance(body.get("values"), dict):
            raise ConfigError(f"{src}: recipe '{name}' must be a mapping with 'values'")
        extra = set(body) - {"description", "values", "detected"}
        if extra:
            raise ConfigError(f"{src}: recipe '{name}' has unknown key '{sorted(extra)[0]}'")
        for part in ("values", "detected"):
            apply_overrides(Config(), body.get(part) or {}, source=f"{src}: recipe '{name}' {part}")
        out[str(name)] = {"description": str(body.get("description", "")), "values": dict(body["values"]),
                          "detected": dict(body.get("detected") or {})}
    if path is None:
        _RECIPES = out
    return out


def recipe_keys() -> set[str]:
    """Every Config field some recipe sets: a profile may not set them (budget and recipe stay apart)."""
    return {k for r in load_recipes().values() for part in ("values", "detected") for k in r[part]}


def is_detected(keypoints: str) -> bool:
    """True when the 2D input is a detector's, not ground truth (``gt``, ``gt16``, ``gt_gmm``, ...)."""
    return not str(keypoints).startswith("gt")


def check_recipe_name(recipe: str, option: str = "--recipe") -> None:
    """``recipe`` is one of ``harness/configs/recipes.yaml``; a one-line ConfigError listing them otherwise."""
    recipes = load_recipes()
    if recipe not in recipes:
        raise ConfigError(f"{option}: unknown recipe '{recipe}'; valid: {', '.join(recipes)}")


def recipe_values(recipe: str, keypoints: str) -> dict[str, Any]:
    """The Config values of ``recipe`` for 2D input ``keypoints`` (its ``detected`` part on detections)."""
    check_recipe_name(recipe)
    r = load_recipes()[recipe]
    return {**r["values"], **(r["detected"] if is_detected(keypoints) else {}), "recipe": recipe}


def resolve_config(profile: str = "quick", overrides: dict[str, Any] | None = None,
                   profiles_path: Path | str | None = None, recipe: str | None = None,
                   sets: dict[str, Any] | None = None) -> Config:
    """Config() <- recipe <- profile <- overrides (None values in overrides are ignored) <- sets.

    The recipe (``harness/configs/recipes.yaml``, default ``harness``) says how to train and evaluate;
    the profile how much (epochs, sizes, strides); a profile may not set a recipe's keys. The profile
    is a built-in one or one of ``profiles_path`` (or ``overrides["profiles_file"]``: ``--profiles``),
    whose names add to and override the built-in ones (:func:`profile_files`); the config records that
    file in ``profiles_file`` when the profile came from it. ``sets`` (:func:`parse_sets`, ``--set``)
    apply last, None values included, and a bad range among them is blamed on ``--set``."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    user = profiles_path if profiles_path is not None else overrides.pop("profiles_file", None)
    overrides.pop("profiles_file", None)
    profiles, files = profile_files(user)
    check_profile_name(profile, profiles=profiles)
    source = files[profile]
    recipe = recipe or overrides.pop("recipe", None) or "harness"
    overrides.pop("recipe", None)
    clash = sorted(set(profiles[profile]) & recipe_keys())
    if clash:
        raise ConfigError(f"{source}: profile '{profile}' sets '{clash[0]}', "
                          "a recipe key (harness/configs/recipes.yaml); profiles set the budget only")
    keypoints = overrides.get("keypoints", profiles[profile].get("keypoints", Config.keypoints))
    mine = str(user) if user is not None and source == Path(user) else None
    cfg = apply_overrides(Config(profile=profile, profiles_file=mine), recipe_values(recipe, keypoints),
                          source=f"recipe '{recipe}'")
    cfg = apply_overrides(cfg, profiles[profile], source=f"profile '{profile}'")
    # a bad value in the profile is blamed on the profile's file, not on the command-line options
    validate(cfg, source=f"{source}: profile '{profile}'")
    cfg = apply_overrides(cfg, overrides, source="options")
    cfg = validate(cfg, source="options")
    if sets:
        cfg = validate(apply_overrides(cfg, sets, source="--set"), source="--set")
    return cfg


def config_from_dict(d: dict[str, Any], source: str) -> Config:
    return validate(apply_overrides(Config(), d, source=source), source=source)
