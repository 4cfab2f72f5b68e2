"""harness.config: ``--set key=value`` (parse_sets, typed by the Config field) and ``--profiles FILE``
(profile_files: a user's profiles add to and override the built-in ones), as resolve_config applies
them: the values land in the resolved config, hence in config.json and the run's identity."""

from __future__ import annotations

import pytest

from harness.config import (FIELD_TYPES, _coerce, _field_kind, apply_overrides, Config, parse_sets, profile_files,
                            resolve_config)
from harness.errors import ConfigError

OWN = {"seed": "--seed", "variant": "--variant"}


def test_values_are_parsed_by_the_field_type():
    got = parse_sets(["lr=2e-4", "epochs=3", "flip_augment=false", "ema_warmup=1", "test_flip=0", "eta=0",
                      "train_keypoints=none", "root_mode=zero_root", "train_on=", "gmm_scale_to_start=TRUE"])
    assert got == {"lr": 0.0002, "epochs": 3, "flip_augment": False, "ema_warmup": True, "test_flip": False,
                   "eta": 0.0, "train_keypoints": None, "root_mode": "zero_root", "train_on": None,
                   "gmm_scale_to_start": True}
    assert [type(got[k]) for k in ("lr", "epochs", "eta")] == [float, int, float]
    assert parse_sets([]) == {}
    assert parse_sets(["lr=1e-3", "lr=0.001"]) == {"lr": 0.001}  # the same value twice: one setting


@pytest.mark.parametrize("items, line", [
    (["lr=fast"], "--set: 'lr' has an invalid value 'fast' (expected float)"),
    (["epochs=2.5"], "--set: 'epochs' has an invalid value '2.5' (expected int)"),
    (["epochs=1e3"], "--set: 'epochs' has an invalid value '1e3' (expected int)"),
    (["flip_augment=maybe"], "--set: 'flip_augment' has an invalid value 'maybe' (expected bool: true, false, 1 or 0)"),
    (["lr=nan"], "--set: 'lr' has an invalid value 'nan' (expected a finite float)"),
    (["lr=inf"], "--set: 'lr' has an invalid value 'inf' (expected a finite float)"),
    (["hid_dim="], "--set: 'hid_dim' has an invalid value '' (expected int)"),
    (["lr"], "--set 'lr': expected key=value (e.g. --set lr=2e-4)"),
    (["=3"], "--set '=3': expected key=value (e.g. --set lr=2e-4)"),
    (["seed=3"], "--set seed: has its own option, use --seed"),
    (["lr=1e-3", "lr=2e-3"], "--set lr: given twice (0.001 and 0.002)"),
])
def test_a_bad_item_is_one_line_naming_key_type_and_value(items, line):
    with pytest.raises(ConfigError) as e:
        parse_sets(items, OWN)
    assert str(e.value) == line


def test_an_unknown_key_lists_the_keys_that_may_be_set():
    with pytest.raises(ConfigError) as e:
        parse_sets(["learning_rate=1"], OWN)
    head, valid = str(e.value).split("; valid keys: ")
    assert head == "--set: unknown config key 'learning_rate'"
    assert valid.split(", ") == [k for k in FIELD_TYPES if k not in OWN]
    assert valid.startswith("noise, benchmark, train_on,")


def test_every_field_type_is_parseable_and_others_fail_at_import():
    assert {_field_kind(t) for t in FIELD_TYPES.values()} == {("int", False), ("float", False), ("bool", False),
                                                              ("str", False), ("str", True)}
    with pytest.raises(TypeError, match="only int, float, bool or str"):
        _field_kind("tuple[int, ...]")
    with pytest.raises(ConfigError, match=r"'epochs' has an invalid value True \(expected int\)"):
        _coerce("epochs", True, "profile 'x'")  # YAML `epochs: true` is not 1


def test_sets_apply_last_none_included_and_ranges_are_blamed_on_set():
    base = resolve_config("smoke")
    cfg = resolve_config("smoke", sets=parse_sets(["lr=2e-4", "hid_dim=48", "n_head=4"]))
    assert (cfg.lr, cfg.hid_dim, cfg.n_head, base.lr, base.hid_dim) == (0.0002, 48, 4, 0.001, 32)
    assert cfg.hash() != base.hash() and cfg.lifter_hash() == base.lifter_hash()  # lr is not the lifter's
    # the diffpose recipe trains on GT 2D for detections; --set takes that back (an override's None is ignored)
    detected = {"keypoints": "cpn_ft_h36m_dbb"}
    assert resolve_config("smoke", detected, recipe="diffpose").train_keypoints == "gt"
    assert resolve_config("smoke", {**detected, "train_keypoints": None}, recipe="diffpose").train_keypoints == "gt"
    assert resolve_config("smoke", detected, recipe="diffpose",
                          sets=parse_sets(["train_keypoints=none"])).train_keypoints is None
    with pytest.raises(ConfigError) as e:
        resolve_config("smoke", sets=parse_sets(["lr=-1"]))
    assert str(e.value) == "--set: 'lr' must be > 0 (got -1.0)"
    with pytest.raises(ConfigError) as e:
        resolve_config("smoke", sets=parse_sets(["hid_dim=31"]))
    assert str(e.value) == "--set: 'hid_dim' must be a multiple of n_head (2) (got 31)"


def test_a_users_profiles_add_to_and_override_the_builtin_ones(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("profiles:\n  smoke:\n    epochs: 1\n  tiny:\n    description: two epochs\n    epochs: 2\n"
                    "    hid_dim: 16\n    n_head: 2\n")
    profiles, files = profile_files(mine)
    assert list(profiles)[:6] == ["smoke", "quick", "diffpose", "paper", "cpu_h36m", "ci_h36m"]
    assert profiles["tiny"] == {"epochs": 2, "hid_dim": 16, "n_head": 2}  # the description is not a setting
    assert profiles["smoke"] == {"epochs": 1} and files["smoke"] == files["tiny"] == mine
    assert files["quick"].name == "profiles.yaml" and files["quick"] != mine
    tiny = resolve_config("tiny", {"profiles_file": str(mine)})
    assert (tiny.profile, tiny.profiles_file, tiny.epochs, tiny.hid_dim, tiny.lifter_epochs) == (
        "tiny", str(mine), 2, 16, 50)
    smoke = resolve_config("smoke", {"profiles_file": str(mine)})
    assert (smoke.epochs, smoke.train_stride) == (1, 1)  # the user's smoke replaces the built-in one whole
    quick = resolve_config("quick", {"profiles_file": str(mine)})
    assert quick.profiles_file is None and quick == resolve_config("quick")  # a built-in profile: nothing recorded
    # the file is not hashed: a user's profile equal to a built-in one is the same run
    same = tmp_path / "same.yaml"
    same.write_text("profiles:\n  smoke2:\n" + "".join(f"    {k}: {v}\n" for k, v in profile_files()[0]["smoke"].items()))
    twin = resolve_config("smoke2", {"profiles_file": str(same)})
    assert twin.hash() == resolve_config("smoke").hash() and twin.profiles_file == str(same)


@pytest.mark.parametrize("text, line", [
    ("profiles:\n  mine:\n    lr: 0.1\n", "{p}: profile 'mine' sets 'lr', a recipe key (harness/configs/recipes.yaml); "
                                         "profiles set the budget only"),
    ("profiles:\n  mine:\n    epochs: -1\n", "{p}: profile 'mine': 'epochs' must be >= 0 (got -1)"),
    ("profiles:\n  mine:\n    epoch: 3\n", "{p}: profile 'mine': unknown config key 'epoch'; valid keys: variant, "),
    ("profiles: [mine]\n", "{p}: expected a mapping with a 'profiles' key"),
    (b"\xff\xfe\x00profiles", "{p}: not a text file (expected YAML with a 'profiles' key)"),
])
def test_a_bad_profiles_file_is_one_line_naming_it(tmp_path, text, line):
    p = tmp_path / "mine.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as e:
        resolve_config("mine", {"profiles_file": str(p)})
    assert str(e.value).startswith(line.format(p=p)), str(e.value)


def test_an_unknown_profile_lists_the_users_names_too(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("profiles:\n  tiny:\n    epochs: 1\n")
    with pytest.raises(ConfigError) as e:
        resolve_config("huge", profiles_path=p)
    assert str(e.value) == ("--profile: unknown profile 'huge'; valid: ci_h36m, cpu_h36m, diffpose, paper, quick, "
                            "smoke, tiny")


def test_config_json_round_trips_the_new_field():
    cfg = apply_overrides(Config(), {"profiles_file": "mine.yaml", "lr": 2e-4}, source="x")
    assert apply_overrides(Config(), cfg.to_dict(), source="config.json") == cfg
    assert cfg.hash() == apply_overrides(Config(), {"lr": 2e-4}, source="x").hash()  # profiles_file: not hashed
