"""Package data: the profiles (``profiles.yaml``), the variant and noise declarations
(``variants.yaml``) and the reference numbers (``reference/*.yaml``), installed with the package so
a wheel install finds them; and the one YAML reader that gives a one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent


def load_yaml(path: Path) -> Any:
    """``yaml.safe_load`` with a one-line error naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
