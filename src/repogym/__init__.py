"""repogym: turn a git repository into verified, executable coding tasks."""

__version__ = "0.1.0"
