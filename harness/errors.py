"""One exception type for every user-facing failure.

Anything a user can cause (a missing file, a wrong shape, an unknown name, bad YAML) raises
:class:`HarnessError` with a one-line message that names the file or option and what is wrong.
The CLI prints it as ``error: <message>`` and exits non-zero, without a traceback (``--debug``
shows one). Programming errors stay ordinary exceptions.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A user-facing error: one line naming the file/option and what is wrong."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split())


class DataError(HarnessError):
    """A data file is missing, unreadable, malformed or inconsistent."""


class UnsafeFileError(DataError):
    """A pickled payload asked for something other than plain data (arrays, containers, scalars)."""


class ConfigError(HarnessError):
    """A variant / profile / YAML / option value is invalid."""
