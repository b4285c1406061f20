"""td-graph rotating its own file: ``records.ndjson`` → ``.1`` → ``.2`` … → ``.<keep>``, then gone.

Only between pages (everything written is committed), and only by renames: a tailer that
follows the inode (Filebeat, rsyslog imfile) reads the renamed file to its end, then the new
one from its start, so no record is read twice or skipped.  Crash-safe at every step:

* before the file itself is renamed, older files may have moved up a number (a gap in the
  numbering is harmless) and the state's file is still at the path;
* after the rename the state's file is at ``.1``, which is where ``fileopen`` looks for it;
* the new file's identity reaches the state with the next page's checkpoint (or at the start
  after a crash, with the adopted records of that page).

Renames are synced (directory fsync) before the state can refer to the new file.
"""

from __future__ import annotations

import os
import re

from ..errors import OutputError
from .fileio import crash_point, fsync_dir

__all__ = ["rotate_files", "rotated_path"]


def rotated_path(path: str, n: int) -> str:
    return f"{path}.{n}"


def rotate_files(path: str, keep: int) -> None:
    """Shift ``path`` to ``.1`` and each ``.n`` to ``.n+1``; the oldest beyond ``keep`` goes."""
    if keep < 1:
        raise OutputError(f"output.keep is {keep}: rotation needs at least 1 (the file just rotated)")
    folder, base = os.path.split(path)
    try:
        pattern = re.compile(re.escape(base) + r"\.(\d+)")
        numbers = sorted(int(m.group(1)) for name in os.listdir(folder or ".") if (m := pattern.fullmatch(name)))
        for n in (n for n in numbers if n >= keep):  # beyond keep once this rotation is done
            os.unlink(rotated_path(path, n))
        for n in sorted((n for n in numbers if n < keep), reverse=True):
            os.replace(rotated_path(path, n), rotated_path(path, n + 1))
        crash_point("rotate:before_rename")
        os.replace(path, rotated_path(path, 1))
    except OSError as exc:
        raise OutputError(f"cannot rotate output file {path}: {exc.strerror} ({exc.filename})") from None
    crash_point("rotate:after_rename")
    fsync_dir(folder or ".")
