"""The plugin manager factory and the source catalogue it produces.

Order (tox's model): block list -> entry-point group ``td_graph_plugin`` -> the operator's
``hooks_dir`` -> td-graph's own built-in modules (registered through the very same hooks) ->
``check_pending()``.  A factory, not an import-time global, so each test gets a fresh manager.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator

import pluggy

from . import hookspecs
from .catalogue import DISABLE_ENV, Catalogue
from .errors import PluginError
from .spec import SourceSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "BUILTIN_PLUGINS",
    "DISABLE_ENV",
    "create_plugin_manager",
    "Catalogue",
    "load_catalogue",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "td_graph_plugin"
# td-graph's own sources (the isolation audit feed among them) register through the same hook
# as everyone's.
BUILTIN_PLUGINS = ("td_graph_plugin.sources.catalogue",)


def create_plugin_manager(
    *,
    hooks_dir: str | None = None,
    blocked: Iterable[str] = (),
    load_entrypoints: bool = True,
    extra_plugins: Iterable[object] = (),
) -> pluggy.PluginManager:
    """Build a manager with every plugin loaded and validated.

    :param hooks_dir: folder of local ``*.py`` hook modules (the config's ``hooks_dir``).
    :param blocked: plugin names not to load (also ``$TD_GRAPH_DISABLED_PLUGINS``, comma list).
    :param load_entrypoints: load the ``td_graph_plugin`` entry-point group (off in unit tests).
    :param extra_plugins: objects to register as well (tests, embedding hosts).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    names = set(blocked) | {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    for name in sorted(names):
        pm.set_blocked(name)
    if load_entrypoints:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"entry-point plugin {exc.plugin!r} is invalid: {exc}") from None
        except Exception as exc:  # a third-party import error must name the culprit
            raise PluginError(f"loading entry points of group {ENTRY_POINT_GROUP!r} failed: {exc!r}") from exc
    if hooks_dir:
        for name, module in _load_hooks_dir(hooks_dir):
            if not pm.is_blocked(name):
                _register(pm, module, name)
    for dotted in BUILTIN_PLUGINS:
        if not pm.is_blocked(dotted):
            _register(pm, importlib.import_module(dotted), dotted)
    for i, plugin in enumerate(extra_plugins):
        _register(pm, plugin, getattr(plugin, "__name__", None) or f"extra-{i}-{type(plugin).__name__}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin) or exc.plugin!r}: {exc}") from None
    return pm


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r} is invalid: {exc}") from None
    except ValueError as exc:  # already registered under that name
        raise PluginError(f"plugin {name!r} could not be registered: {exc}") from None


def _load_hooks_dir(path: str) -> Iterator[tuple[str, object]]:
    """Import each ``*.py`` of the operator's hooks folder (a leading ``_`` marks a helper).

    That code runs with td-graph's credentials, so a folder or module that anyone but root or
    the running user owns, or that its group or others may write, is refused before any of it
    runs.  Modules are compiled from the very bytes that were checked, read through the
    checked folder's descriptor: nothing can be swapped in between the check and the import.
    """
    import stat

    me = os.geteuid() if hasattr(os, "geteuid") else None

    def refuse_unsafe(what: str, st: os.stat_result) -> None:
        if me is None:  # no POSIX owners or modes to check
            return
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise PluginError(
                f"hooks_dir: {what} is writable by its group or by others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}), so they could run code as td-graph; "
                f"run `chmod go-w {what}`"
            )
        if st.st_uid not in (0, me):
            raise PluginError(
                f"hooks_dir: {what} is owned by uid {st.st_uid}, neither root nor the user td-graph "
                f"runs as (uid {me}); run `chown {me} {what}` (or `chown root {what}`)"
            )

    try:
        dir_fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        raise PluginError(f"hooks_dir {path!r} is not a directory") from None
    checked: list[tuple[Path, bytes]] = []
    try:
        if not stat.S_ISDIR(os.fstat(dir_fd).st_mode):
            raise PluginError(f"hooks_dir {path!r} is not a directory")
        refuse_unsafe(path, os.fstat(dir_fd))
        for name in sorted(os.listdir(dir_fd)):
            file = Path(path) / name
            if not name.endswith(".py") or name.startswith("_"):
                continue
            try:
                if not stat.S_ISREG(os.stat(name, dir_fd=dir_fd).st_mode):
                    continue
                fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
                with os.fdopen(fd, "rb") as fh:
                    refuse_unsafe(str(file), os.fstat(fh.fileno()))
                    checked.append((file, fh.read()))
            except OSError as exc:
                raise PluginError(f"hooks_dir module {file} cannot be read: {exc.strerror}") from None
    finally:
        os.close(dir_fd)
    for file, source in checked:  # every module passed the checks before any of them runs
        mod_name = f"td_graph_hooks.{file.stem}"
        spec = importlib.util.spec_from_file_location(mod_name, file)
        if spec is None:
            raise PluginError(f"hooks_dir module {file} cannot be loaded")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            exec(compile(source, str(file), "exec"), module.__dict__)
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise PluginError(f"hooks_dir module {file} failed to import: {exc!r}") from exc
        yield f"hooks_dir:{file.stem}", module


def load_catalogue(pm: pluggy.PluginManager) -> Catalogue:
    """Call every ``td_graph_register_sources`` implementation, attributing each registration."""
    catalogue = Catalogue()
    for impl in reversed(pm.hook.td_graph_register_sources.get_hookimpls()):
        owner = impl.plugin_name

        def register(spec: SourceSpec, _owner: str = owner) -> None:
            catalogue.add(spec, _owner)

        try:
            impl.function(*[register for _ in impl.argnames])
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {owner!r} failed in td_graph_register_sources: {exc!r}") from exc
    return catalogue
