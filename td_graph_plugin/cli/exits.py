"""Errors to exit codes, the contract's: 0 success, 1 fatal or a failed source, 2 configuration
error; every error is one line naming the problem, never a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..errors import ConfigError, PluginError, TdGraphError

__all__ = ["guarded"]


def guarded(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    try:
        return int(func(args) or 0)
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
