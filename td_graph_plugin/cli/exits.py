"""Errors to exit codes, the contract's: 0 success, 1 fatal or a failed source, 2 configuration
error; every error is one line naming the problem, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from ..errors import ConfigError, PluginError, TdGraphError

__all__ = ["guarded", "CLOSED_PIPE_EXIT"]

# A reader that went away (`td-graph sources | head -1`): what a Unix tool killed by SIGPIPE
# exits with (128 + 13), and no BrokenPipeError traceback on the way out.
CLOSED_PIPE_EXIT = 141


def guarded(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()  # inside the guard: a closed pipe found at exit is one too
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except ConfigError as exc:
        print(f"td-graph: configuration error: {exc}", file=sys.stderr)
        return 2
    except PluginError as exc:
        print(f"td-graph: plugin error: {exc}", file=sys.stderr)
        return 1
    except TdGraphError as exc:
        print(f"td-graph: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _closed_pipe() -> int:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return CLOSED_PIPE_EXIT
