"""Errors sorted by boundary; the CLI converts each to one line and an exit status."""


class RepogymError(Exception):
    """Something the user can fix: bad input, a missing tool, a patch that does not apply.

    The message names the thing (file, line, task id, block) and says what to do.
    """

    exit_code = 2


class PatchError(RepogymError):
    """A SEARCH/REPLACE patch does not parse or does not apply."""

    exit_code = 1


class SandboxError(RepogymError):
    """A sandbox cannot be created or used (not a failing command: that is an ExecResult)."""

    exit_code = 1


class SandboxDied(SandboxError):
    """The sandbox is gone (closed, its working copy removed): an infrastructure failure, not a tool error."""
