"""Regenerate the vendored OCSF subset from a git checkout (or bare mirror) of ocsf/ocsf-schema.

    python tests/data/ocsf/vendor.py /path/to/ocsf-schema 1.8.0

Copies, byte for byte, the event classes td-graph's OCSF format writes (with the classes they
extend), the objects it may fill (with the objects they extend), every profile those files
include, ``categories.json``, ``version.json``, ``LICENSE`` and ``NOTICE``; ``dictionary.json``
is reduced to the attributes those files name (entries unchanged, the ``types`` section whole).
An object the mapping emits but this list lacks fails validation until it is added here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLASSES = (
    "events/base_event.json",
    "events/iam/authentication.json",
    "events/iam/account_change.json",
    "events/application/api_activity.json",
    "events/findings/detection_finding.json",
    "events/findings/incident_finding.json",
    "events/discovery/user_inventory.json",
    "events/discovery/inventory_info.json",
)
OBJECTS = (
    "metadata", "product", "cloud", "account", "user", "group", "organization", "actor", "api", "service",
    "request", "network_endpoint", "endpoint", "location", "os", "http_request", "finding_info", "analytic",
    "attack", "technique", "sub_technique", "tactic", "device", "resource_details", "evidences",
)

def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def main(repo: str, tag: str) -> None:
    tree = set(git(repo, "ls-tree", "-r", "--name-only", tag).split())
    files: dict[str, str] = {}

    def take(path: str) -> dict:
        if path not in files:
            files[path] = git(repo, "show", f"{tag}:{path}")
        return json.loads(files[path])

    def event_path(name: str) -> str:
        return next(p for p in sorted(tree) if p.startswith("events/") and p.endswith(f"/{name}.json"))

    todo = [p for p in CLASSES] + [f"objects/{o}.json" for o in OBJECTS]
    while todo:
        path = todo.pop()
        doc = take(path)
        todo.extend(doc.get("attributes", {}).get("$include", []))
        parent = doc.get("extends")
        if parent:
            todo.append(f"objects/{parent}.json" if path.startswith("objects/") else event_path(parent))
    names: set[str] = set()
    for text in files.values():
        names.update(k for k in json.loads(text).get("attributes", {}) if k != "$include")
    dictionary = json.loads(git(repo, "show", f"{tag}:dictionary.json"))
    dictionary["attributes"] = {k: v for k, v in dictionary["attributes"].items() if k in names}
    for path, text in files.items():
        out = HERE / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    (HERE / "dictionary.json").write_text(json.dumps(dictionary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for name in ("categories.json", "version.json", "LICENSE", "NOTICE"):
        (HERE / name).write_text(git(repo, "show", f"{tag}:{name}"), encoding="utf-8")
    commit, date = git(repo, "log", "-1", "--format=%H %cs", tag).split()
    version = json.loads(git(repo, "show", f"{tag}:version.json"))["version"]
    (HERE / "SOURCE").write_text(f"repository: github.com/ocsf/ocsf-schema\ntag: {tag}\nversion: {version}\ncommit: {commit}\ndate: {date}\n",
                                 encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "1.8.0")
