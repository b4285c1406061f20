"""A package a user can install (issue 14 item 13): the Apache-2.0 LICENSE, every third-party
import declared, and a wheel that, installed in a fresh virtualenv without extras, runs
`td-graph --help`, `sources` and `conf show`, and imports neither the simulator nor trustme.

The wheel test builds from a copy of the sources in a temporary folder (the shared working tree
gets no build/ or egg-info) and installs its dependencies offline: the fresh virtualenv sees
exactly the runtime closure of the wheel's own Requires-Dist, linked from this virtualenv, so a
missing declaration or an extra that sneaks into the runtime shows, with no registry involved.
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import Distribution, distribution, packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "td_graph_plugin"
# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the Apache License 2.0 verbatim.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
# Imported but not installed by pip: syslog-ng's own module, present only inside syslog-ng.
HOST_PROVIDED = {"syslogng", "_syslogng"}


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    return cfg


def _requirements(text: str) -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in text.splitlines() if line.strip()}


def _third_party_imports(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return {n for n in found if n not in sys.stdlib_module_names and n != "td_graph_plugin"} - HOST_PROVIDED


def _distributions(imports: set[str]) -> set[str]:
    mapping = packages_distributions()
    missing = sorted(n for n in imports if n not in mapping)
    assert not missing, f"imported but installed by no distribution here: {missing}"
    return {canonicalize_name(mapping[n][0]) for n in imports}


# --- declarations -------------------------------------------------------------------------------
def test_license_is_the_apache_2_text_and_the_metadata_names_it():
    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_SHA256
    meta = _setup_cfg()["metadata"]
    assert meta["license"] == "Apache-2.0"
    assert meta["license_files"].split() == ["LICENSE"]


def test_every_runtime_import_is_declared_in_install_requires():
    """A direct import must not rely on another package's dependencies (certifi and urllib3
    came with requests): each one is in install_requires."""
    declared = _requirements(_setup_cfg()["options"]["install_requires"])
    runtime = _third_party_imports(PKG) - _third_party_imports(PKG / "simulator")
    undeclared = _distributions(runtime) - declared
    assert not undeclared, f"imported by td_graph_plugin but not in install_requires: {sorted(undeclared)}"
    assert {"certifi", "urllib3"} <= declared


def test_the_simulators_imports_are_in_the_demo_extra_not_the_runtime():
    extras = _setup_cfg()["options.extras_require"]
    declared = _requirements(_setup_cfg()["options"]["install_requires"])
    simulator_only = _distributions(_third_party_imports(PKG / "simulator")) - declared
    assert simulator_only == {"trustme"}
    assert simulator_only <= _requirements(extras["demo"]) and simulator_only <= _requirements(extras["test"])


# --- the wheel, installed -------------------------------------------------------------------------
def _copy_sources(dest: Path) -> Path:
    src = dest / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "conf", src / "conf", ignore=ignore)
    shutil.copytree(PKG, src / "td_graph_plugin", symlinks=True, ignore=ignore)
    return src


def _run(*args: str | Path, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def _closure(requires: list[str]) -> list[Distribution]:
    """The distributions a plain `pip install` of these requirements brings (no extras),
    resolved against what this virtualenv has installed."""
    seen: dict[str, Distribution] = {}
    todo = list(requires)
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        dist = distribution(req.name)
        assert req.specifier.contains(dist.version, prereleases=True), f"{req} but {dist.version} is installed"
        seen[name] = dist
        todo.extend(dist.requires or [])
    return list(seen.values())


def _link_closure(dists: list[Distribution], dest: Path) -> None:
    """Each distribution's top-level files and its .dist-info, linked into ``dest``."""
    dest.mkdir()
    for dist in dists:
        site = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if not (dest / top).exists():
                (dest / top).symlink_to(site / top)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv (no pip, no extras) with the wheel installed: its bin folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_sources(tmp)
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", src, cwd=tmp)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp / "dist").glob("td_graph_plugin-*.whl")
    venv = tmp / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    put = _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel, cwd=tmp)
    assert put.returncode == 0, put.stdout + put.stderr
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    _link_closure(_closure(requires), tmp / "deps")
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp).stdout.strip())
    (site / "td-graph-runtime-deps.pth").write_text(str(tmp / "deps") + "\n", encoding="utf-8")
    return venv / "bin"


@pytest.fixture(scope="module")
def wheel_files(installed: Path) -> dict[str, bytes]:
    (wheel,) = (installed.parent.parent / "dist").glob("td_graph_plugin-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_the_wheel_holds_the_license_and_every_conf_file_once(wheel_files):
    licence = [n for n in wheel_files if re.fullmatch(r"td_graph_plugin-[^/]+\.dist-info/licenses/LICENSE", n)]
    assert len(licence) == 1 and hashlib.sha256(wheel_files[licence[0]]).hexdigest() == APACHE_2_SHA256
    conf = ROOT / "conf"
    expected = {f"td_graph_plugin/conf_files/{p.relative_to(conf).as_posix()}": p.read_bytes()
                for p in conf.rglob("*") if p.is_file()}
    packaged = {n: b for n, b in wheel_files.items() if n.startswith("td_graph_plugin/conf_files/")}
    assert packaged == expected
    metadata = next(b for n, b in wheel_files.items() if n.endswith(".dist-info/METADATA")).decode()
    assert re.search(r"^Requires-Dist: certifi", metadata, re.M) and re.search(r"^Requires-Dist: urllib3", metadata, re.M)


def test_the_installed_wheel_runs_without_the_checkout_or_the_extras(installed, tmp_path):
    python, td_graph = installed / "python", installed / "td-graph"
    where = _run(python, "-c", "import td_graph_plugin; print(td_graph_plugin.__file__)", cwd=tmp_path)
    assert where.stdout.startswith(str(installed.parent)), where.stdout + where.stderr  # not the checkout
    assert _run(python, "-c", "import trustme", cwd=tmp_path).returncode != 0  # no extra installed

    helped = _run(td_graph, "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "conf" in helped.stdout, helped.stderr
    listed = _run(td_graph, "sources", "--format", "json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert '"security.alerts_v2"' in listed.stdout and '"td_graph.isolation"' in listed.stdout
    shown = _run(td_graph, "conf", "show", "systemd", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.encode() == (ROOT / "conf" / "systemd" / "td-graph.service").read_bytes()
    demo = _run(td_graph, "demo", cwd=tmp_path)
    assert demo.returncode == 2 and "td-graph-plugin[demo]" in demo.stderr and "Traceback" not in demo.stderr

    timed = _run(python, "-X", "importtime", "-c", "import td_graph_plugin.cli.main", cwd=tmp_path)
    assert timed.returncode == 0, timed.stderr
    modules = {line.rsplit("|", 1)[1].strip() for line in timed.stderr.splitlines() if line.startswith("import time:")}
    assert "td_graph_plugin.cli.main" in modules
    assert not {m for m in modules if m.startswith("td_graph_plugin.simulator") or m.split(".")[0] == "trustme"}


def test_the_fresh_environment_is_what_pip_would_install(installed, tmp_path):
    """pip's own check: every Requires-Dist of the installed wheel is satisfied, and nothing
    in the closure is broken."""
    checked = _run(sys.executable, "-m", "pip", "--python", installed / "python", "check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert sysconfig.get_paths()["purelib"] not in _run(installed / "python", "-c", "import sys; print(sys.path)",
                                                         cwd=tmp_path).stdout
