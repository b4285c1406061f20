"""Regenerate the vendored ECS subset from a git checkout (or bare mirror) of elastic/ecs.

    python tests/data/ecs/vendor.py /path/to/elastic/ecs v9.4.0

Writes ``ecs_flat_subset.yml`` (the field sets td-graph's ECS format may use, each entry as in
``generated/ecs/ecs_flat.yml`` minus its long prose), ``LICENSE.txt``, ``NOTICE.txt`` and
``SOURCE`` (tag, commit, date).  The subset is chosen by field set, not by what the mapping
emits: a field outside these sets fails validation until it is added here on purpose.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
FIELD_SETS = (
    "ecs.", "event.", "user.", "source.", "user_agent.", "host.", "rule.", "threat.", "related.",
    "cloud.", "organization.", "error.", "device.",
)
# Sub-objects td-graph never fills (entity analytics, threat intel feeds): left out to keep the
# subset small; a field under them is "not in the vendored subset", as intended.
EXCLUDED = (".entity.", "threat.indicator.", "threat.enrichments.", "threat.feed.")
KEPT_KEYS = ("flat_name", "level", "type", "normalize", "short", "allowed_values", "expected_values",
             "object_type", "pattern", "required", "scaling_factor")


def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def main(repo: str, tag: str) -> None:
    flat = yaml.safe_load(git(repo, "show", f"{tag}:generated/ecs/ecs_flat.yml"))
    subset = {}
    for name, entry in flat.items():
        wanted = "." not in name or name.startswith(FIELD_SETS)
        if not wanted or any(x in name for x in EXCLUDED):
            continue
        kept = {k: entry[k] for k in KEPT_KEYS if k in entry}
        if "allowed_values" in kept:
            kept["allowed_values"] = [{k: v for k, v in a.items() if k in ("name", "expected_event_types")}
                                      for a in kept["allowed_values"]]
        subset[name] = kept
    version = git(repo, "show", f"{tag}:version").strip()
    header = f"# ECS {version} ({tag}), subset of generated/ecs/ecs_flat.yml from github.com/elastic/ecs; Apache-2.0 (LICENSE.txt)\n"
    (HERE / "ecs_flat_subset.yml").write_text(header + yaml.safe_dump(subset, sort_keys=True, width=120), encoding="utf-8")
    (HERE / "LICENSE.txt").write_text(git(repo, "show", f"{tag}:LICENSE.txt"), encoding="utf-8")
    (HERE / "NOTICE.txt").write_text(git(repo, "show", f"{tag}:NOTICE.txt"), encoding="utf-8")
    commit, date = git(repo, "log", "-1", "--format=%H %cs", tag).split()
    (HERE / "SOURCE").write_text(f"repository: github.com/elastic/ecs\ntag: {tag}\nversion: {version}\ncommit: {commit}\ndate: {date}\n",
                                 encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "v9.4.0")
