"""User-facing errors: one line that names the file, line or field and the fix."""

from __future__ import annotations


class MedsweepError(Exception):
    """An error the user can fix. The CLI prints ``error: <message>`` and exits with ``exit_code``."""

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(MedsweepError):
    """A configuration file, flag or environment variable is wrong."""


class DataError(MedsweepError):
    """A dataset file is missing or malformed."""


class EndpointError(MedsweepError):
    """An endpoint is unreachable, rejects the key, or does not serve the model."""
