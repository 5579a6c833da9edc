"""Error hierarchy and the exit-code map (DESIGN §1).

Specific errors also inherit the matching builtin (as huggingface/datasets does), so callers can catch either.
Every message is one line that names the file and the cause.
"""

from __future__ import annotations

import os

def printable_path(path: str | os.PathLike) -> str:
    """A path as valid UTF-8 text: bytes that are not UTF-8 become backslash escapes (\\xff), never lost."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


class VidprepError(Exception):
    """Base class for every error vidprep raises on purpose."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        self.path = printable_path(path) if path is not None else None
        one_line = " ".join(str(message).split())
        super().__init__(f"{self.path}: {one_line}" if self.path else one_line)

    @property
    def kind(self) -> str:
        """Short error type name recorded in errors.jsonl."""
        return type(self).__name__


class UsageError(VidprepError, ValueError):
    """Bad flag, bad config, missing tool or unwritable output: detected before any decoding (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A config file or option value is invalid."""


class DependencyError(UsageError):
    """A required program or optional package is missing (ffmpeg, ray)."""


class InputError(VidprepError, OSError):
    """An input path cannot be used: missing, not a regular file, outside its root, unsafe name."""


class ProbeError(VidprepError):
    """ffprobe could not read the file as a video."""


class DecodeError(VidprepError):
    """ffmpeg failed, timed out or produced inconsistent output while decoding."""


class EncodeError(VidprepError):
    """ffmpeg failed while writing an output file."""


class ShardError(VidprepError):
    """A shard is missing, invalid, or could not be written."""


class WeightsError(UsageError):
    """Model weights are missing, corrupt, unsafe or do not match the model."""


class DeferredBuildError(Exception):
    """A model built in the background (while the first video decoded) failed; raised where it is first needed.

    Deliberately not a VidprepError: no video's error record may take it. The run stops and the driver raises
    ``cause``, the error the build raised (a WeightsError is exit 2, as when the model is built up front).
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause
