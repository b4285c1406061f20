"""Where records go: stdout or an exactly-once NDJSON file (syslog-ng runs in-process)."""

from __future__ import annotations

from ..config.model import Config
from .base import Output, PositionedOutput
from .file import FileOutput
from .stdout import StdoutOutput

__all__ = ["Output", "PositionedOutput", "FileOutput", "StdoutOutput", "output_from_config"]


def output_from_config(config: Config) -> Output:
    if config.output_type == "file":
        assert config.output_path
        return FileOutput(config.output_path, max_bytes=config.output_max_bytes, keep=config.output_keep)
    return StdoutOutput()
