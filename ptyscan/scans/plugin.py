"""The ``plugin`` scan: a PtyScan subclass from a user's Python file, named in a recipe.

::

    scan:
      name: plugin
      file: ~/beamtime/my_scan.py     # the module to load
      classname: null                 # null: the one PtyScan subclass defined in the file
      recipe: {folder: /data/run12}   # parameters of that class
      shape: 128                      # any PtyScan parameter, as usual

``get_scan("plugin")(pars)`` returns an instance of the user's class, not of
:class:`PluginScan`. Its parameters are the PtyScan keys given next to ``file``
(only those set explicitly, so the class keeps its own defaults) plus the keys of
``recipe``; when the class's ``Params`` declares a field named ``recipe`` (a
ported ptypy class reading ``self.info.recipe``) the ``recipe`` mapping is passed
as that field instead. A key given both in ``recipe`` and next to it must agree.

Installed packages register classes through the ``ptyscan.scans`` entry-point
group instead (see :mod:`ptyscan.scans`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import os
import sys
from typing import Any

from pydantic import BaseModel, Field

from ..errors import RecipeError, ScanError
from ..params import InputPath, plain, validate_params
from ..scan import PtyScan
from ..scan_params import PtyScanParams

__all__ = [
    "PluginParams",
    "PluginScan",
    "explicit_values",
    "find_scan_class",
    "load_plugin_module",
]

log = logging.getLogger(__name__)

_OWN_KEYS = ("name", "file", "classname", "recipe")


class PluginParams(PtyScanParams):
    """Parameters of the ``plugin`` scan."""

    name: str = "plugin"
    file: InputPath = None
    """Path of the Python file defining the scan class (``~`` expanded); required."""
    classname: str | None = None
    """Name of the class in that file; None: the only PtyScan subclass defined there."""
    recipe: dict[str, Any] = Field(default_factory=dict)
    """Parameters of the user's class (or its ``recipe`` field, if it declares one)."""


def load_plugin_module(path, *, package=None, builtins=None, what="plugin"):
    """Import the Python file ``path`` as a module (once per file version) and return it.

    Parameters
    ----------
    path : str or PathLike
        The ``.py`` file (``~`` expanded, relative to the working directory).
    package : str, optional
        Import the file as a module of this package, so its relative imports
        (``from . import x``, ``from ..core import y``) resolve there. Default: a
        top-level module.
    builtins : dict, optional
        The module's builtins (e.g. with an ``__import__`` that maps names).
    what : str
        The scan name that starts messages ('plugin', 'ptypy').
    """
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.isfile(path):
        raise ScanError(f"{what}: scan.file {path} does not exist; give the path of a .py file")
    if not path.endswith(".py"):
        raise ScanError(f"{what}: scan.file {path} is not a Python file (.py)")
    stem = os.path.splitext(os.path.basename(path))[0]
    digest = hashlib.sha1(path.encode()).hexdigest()[:10]
    name = f"ptyscan_plugin_{''.join(c if c.isalnum() else '_' for c in stem)}_{digest}"
    name = f"{package}.{name}" if package else name
    stamp = os.stat(path).st_mtime_ns
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__ptyscan_mtime__", None) == stamp:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__ptyscan_mtime__ = stamp
    if builtins is not None:
        module.__builtins__ = builtins
    sys.modules[name] = module  # pydantic resolves the module's annotations through it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ScanError(f"{what}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def find_scan_class(module, classname=None):
    """The PtyScan subclass ``classname`` of ``module``, or the only one it defines."""
    defined = {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, PtyScan)
        and obj.__module__ == module.__name__
        and not issubclass(obj, PluginScan)
    }
    where = module.__file__
    if classname is not None:
        obj = getattr(module, classname, None)
        if not (inspect.isclass(obj) and issubclass(obj, PtyScan)):
            what = "is not a PtyScan subclass" if obj is not None else "is not defined"
            raise ScanError(
                f"plugin: scan.classname {classname!r} {what} in {where}; PtyScan subclasses "
                f"defined there: {sorted(defined) or 'none'}"
            )
        return obj
    if len(defined) != 1:
        found = f"found {sorted(defined)}" if defined else "found none"
        raise ScanError(
            f"plugin: {where} must define exactly one PtyScan subclass when scan.classname is "
            f"null, {found}; set scan.classname"
        )
    return next(iter(defined.values()))


class PluginScan(PtyScan):
    """A user's PtyScan subclass loaded from a Python file (``scan.file``)."""

    Params = PluginParams

    def __new__(cls, pars=None, *, comm=None, **kwargs):
        values = explicit_values(pars)
        values.update(kwargs)
        own = validate_params(
            PluginParams, {k: values.get(k) for k in _OWN_KEYS if k in values}, prefix="scan"
        )
        if own.file is None:
            raise RecipeError(["scan.file: required for the plugin scan (a .py file), got None"])
        target = find_scan_class(load_plugin_module(own.file), own.classname)
        log.info("plugin: using %s from %s", target.__name__, own.file)
        user = {k: v for k, v in values.items() if k not in _OWN_KEYS}
        if "recipe" in target.Params.model_fields:
            user["recipe"] = own.recipe
            from_recipe = set()
        else:
            clash = sorted(
                k for k in own.recipe if k in user and plain(user[k]) != plain(own.recipe[k])
            )
            if clash:
                raise RecipeError(
                    [
                        f"scan.recipe.{k}: {own.recipe[k]!r} differs from scan.{k}: {user[k]!r}; "
                        "give it once"
                        for k in clash
                    ]
                )
            user.update(own.recipe)
            from_recipe = set(own.recipe)
        try:
            return target(user, comm=comm)
        except RecipeError as exc:
            raise RecipeError(_recipe_paths(exc.problems, from_recipe)) from None


def explicit_values(pars) -> dict:
    """The keys set explicitly: a model's ``model_fields_set`` and extra keys, or a
    mapping's keys."""
    if pars is None:
        return {}
    if isinstance(pars, BaseModel):
        values = {k: getattr(pars, k) for k in pars.model_fields_set}
        return {**values, **(pars.model_extra or {})}
    return dict(pars)


def _recipe_paths(problems, from_recipe):
    """Point problems about keys that came from ``recipe`` at ``scan.recipe.<key>``."""
    out = []
    for line in problems:
        key = line[len("scan.") :].split(":", 1)[0].split(".", 1)[0]
        if line.startswith("scan.") and key in from_recipe:
            line = "scan.recipe." + line[len("scan.") :]
        out.append(line)
    return out
