"""Errors of the core and the exit codes they map to.

The core raises these; one place in the CLI (r42.cli.main) turns them into a one-line message on
stderr and the exit code. Set R42_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # an unexpected failure, or a failure with no more specific code
    USAGE = 2  # bad flags, bad input (empty stdin, invalid JSON, wrong shapes)
    NO_CANDIDATE = 3  # no model satisfies the prompt's needs and the constraints
    NO_CREDENTIALS = 4  # no provider has a credential and no local model is available
    ALL_FAILED = 5  # every candidate was tried and failed
    CONFIG = 6  # a broken config or catalog file, a store r42 cannot open
    INTERRUPTED = 130  # Ctrl-C


class R42Error(Exception):
    """An error with a message for the user, a hint of what to do next, and an exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        return f"{text} ({self.hint})" if self.hint else text

    def message_line(self) -> str:
        """What the user sees on stderr."""
        return f"r42: error: {self.one_line()}"

    def as_dict(self) -> dict:
        body = {"type": type(self).__name__, "message": self.message, "code": int(self.exit_code)}
        if self.hint:
            body["hint"] = self.hint
        return body


class InputError(R42Error):
    exit_code = ExitCode.USAGE


class EmptyInputError(InputError):
    """Nothing on stdin: the hint shows a pipe into the command that was run."""

    def __init__(self, command: str = "r42 score") -> None:
        super().__init__("empty input", f'pipe a prompt, e.g. echo "hello" | {command}')

    def for_command(self, command: str) -> "EmptyInputError":
        return EmptyInputError(command)


class UsageError(R42Error):
    exit_code = ExitCode.USAGE


class ConfigError(R42Error):
    exit_code = ExitCode.CONFIG


class NoCandidateError(R42Error):
    exit_code = ExitCode.NO_CANDIDATE


class NoCredentialsError(R42Error):
    exit_code = ExitCode.NO_CREDENTIALS


class AllFailedError(R42Error):
    exit_code = ExitCode.ALL_FAILED
