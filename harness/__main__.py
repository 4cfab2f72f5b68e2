"""The ``harness`` entry point (``python -m harness`` and the console script).

:mod:`harness.cli` reads the package's YAML files (variants, recipes, profiles) when it is imported, to
build its choices; a broken file raises a :class:`harness.errors.HarnessError` before the CLI's own
handler exists. Here it is one line on stderr and its exit code, as every other user-caused error is
(``HARNESS_DEBUG=1`` shows the traceback)."""

from __future__ import annotations

import os
import sys

from harness.errors import HarnessError


def main() -> None:
    try:
        from harness.cli import main as cli_main
    except HarnessError as e:
        if os.environ.get("HARNESS_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    cli_main()


if __name__ == "__main__":
    main()
