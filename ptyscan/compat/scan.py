"""The ``ptypy`` scan: a loader written for ptypy 0.9, run unmodified from its file.

::

    scan:
      name: ptypy
      file: ~/ptypy/ptypy/experiment/nanomax.py   # the loader file, as ptypy ships it
      class: NanomaxContrast                      # null: the only scan class in the file
      path: /data/nanomax/sample1                 # the loader's own parameters ...
      scanNumber: 12
      shape: 256                                  # ... and any PtyScan parameter

The file is imported as a module of :mod:`ptyscan.compat.ptypy.experiment`,
with ``ptypy`` in its absolute imports mapped to :mod:`ptyscan.compat.ptypy`,
so both ``from ..core.data import PtyScan`` and ``from ptypy.core.data import
PtyScan`` reach ptyscan's implementation; an installed ptypy is never
imported. ``get_scan("ptypy")(pars)`` returns an instance of the loader's
class. The loader's parameters are validated against its ``Defaults:`` block
(unknown keys and wrong types are errors) when the recipe is loaded.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import logging
import os
import sys
from typing import Literal

from pydantic import ConfigDict, Field

from ..errors import RecipeError, ScanError
from ..params import InputPath, ParamsModel, plain, validate_params
from ..scan import PtyScan
from ..scans.plugin import explicit_values, find_scan_class, load_plugin_module
from .defaults import as_tuples
from .ptypy.core.data import PtyScan as PtypyStyleScan

__all__ = ["PtypyParams", "PtypyScan", "load_ptypy_file"]

log = logging.getLogger(__name__)

COMPAT = "ptyscan.compat.ptypy"
PACKAGE = COMPAT + ".experiment"
OWN_KEYS = ("name", "file", "class", "classname")
PIP_NAMES = {
    "zmq": "pyzmq",
    "dateutil": "python-dateutil",
    "swmr_tools": "swmr-tools",
    "skimage": "scikit-image",
}
"""Module name → pip package, where they differ (for install hints)."""


class PtypyParams(ParamsModel):
    """Parameters of the ``ptypy`` scan: the file and class; every other key is the
    loader's own (validated against its ``Defaults:`` blocks by :meth:`PtypyScan.validate_recipe`,
    which fills in the loader's defaults)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = "ptypy"
    file: InputPath = None
    """Path of the ptypy loader file (``~`` expanded; relative: next to the recipe, else
    the working directory); required."""
    classname: str | None = Field(None, alias="class")
    """Class in that file (recipe key ``class``); None: the only scan class defined there."""
    save: Literal["append", "link"] | None = None
    """As every scan's ``save`` (checked again by the loader's model)."""
    dfile: str | None = None
    """As every scan's ``dfile``."""
    label: str | None = None
    """As every scan's ``label``."""


def _mapped_import(name, globals=None, locals=None, fromlist=(), level=0):
    """``__import__`` with ``ptypy`` and ``ptypy.x`` mapped to ptyscan's implementation,
    and loader modules next to the importing file (``from .hdf5_loader import ...``,
    ``from . import spec``) imported from there."""
    mapped = level == 0 and (name == "ptypy" or name.startswith("ptypy."))
    if mapped:
        name = COMPAT + name[len("ptypy") :]
    if level or mapped:
        package = (globals or {}).get("__package__")
        target = importlib.util.resolve_name("." * level + name, package)
        for wanted in (target, *(f"{target}.{item}" for item in fromlist or ())):
            _import_sibling(wanted, globals)
    module = builtins.__import__(name, globals, locals, fromlist, 0 if mapped else level)
    return module if (fromlist or not mapped) else importlib.import_module(COMPAT)


def _import_sibling(wanted, globals):
    """Import loader module ``PACKAGE.<stem>`` from ``<stem>.py`` next to the importing
    file (ptypy's loaders import each other: epsic_loader, swmr_loader, optiklabor)."""
    stem = wanted[len(PACKAGE) + 1 :] if wanted.startswith(PACKAGE + ".") else ""
    here = (globals or {}).get("__file__")
    if not stem or "." in stem or here is None:
        return
    path = os.path.join(os.path.dirname(here), stem + ".py")
    loaded = sys.modules.get(wanted)
    if not os.path.isfile(path) or getattr(loaded, "__file__", None) == path:
        return
    spec = importlib.util.spec_from_file_location(wanted, path)
    module = importlib.util.module_from_spec(spec)
    module.__builtins__ = {**vars(builtins), "__import__": _mapped_import}
    sys.modules[wanted] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(wanted, None)
        raise


def _import_hint(exc):
    """An install or compatibility hint for an ImportError raised by a loader file."""
    context = exc.__context__  # ``except ImportError: raise ImportError`` (swmr_loader.py)
    missing = getattr(exc, "name", None) or getattr(context, "name", None) or ""
    if missing.startswith(COMPAT) or COMPAT in str(exc):
        return (
            "the loader uses a part of ptypy that ptyscan's compatibility layer does not "
            "provide (README 'Porting from ptypy' lists what is there)"
        )
    if missing:
        top = missing.split(".")[0]
        return f"the loader needs {top!r}: pip install {PIP_NAMES.get(top, top)}"
    return "check the loader's imports"


def load_ptypy_file(path, classname=None):
    """The ptypy-style scan class ``classname`` (or the only one) of loader file ``path``."""
    loader_builtins = {**vars(builtins), "__import__": _mapped_import}
    importlib.import_module(PACKAGE)
    try:
        module = load_plugin_module(path, package=PACKAGE, builtins=loader_builtins, what="ptypy")
    except ScanError as exc:
        cause = exc.__cause__
        if isinstance(cause, ImportError):
            said = str(cause).replace(COMPAT, "ptypy")
            raise ScanError(
                f"ptypy: importing {path} failed: {said}; {_import_hint(cause)}"
            ) from cause
        raise
    cls = find_scan_class(module, classname)
    if not issubclass(cls, PtypyStyleScan):
        raise ScanError(
            f"ptypy: {cls.__name__} in {path} is a native ptyscan class, not a ptypy loader; "
            "use name: plugin for it"
        )
    return cls


def _target(values, prefix, base_dir=None):
    """(the loader class, the loader's own values, the checked file/class keys)."""
    own = {k: values[k] for k in OWN_KEYS if k in values}
    if "class" in own:
        own["classname"] = own.pop("class")
    user = {k: v for k, v in values.items() if k not in OWN_KEYS}
    checked = validate_params(PtypyParams, own, prefix=prefix, base_dir=base_dir)
    if checked.file is None:
        raise RecipeError([f"{prefix}.file: required for the ptypy scan (a .py file), got None"])
    return load_ptypy_file(checked.file, checked.classname), user, checked


class PtypyScan(PtyScan):
    """A ptypy 0.9 loader class from its unmodified file (``scan.file``, ``scan.class``)."""

    Params = PtypyParams

    @classmethod
    def validate_recipe(cls, section, *, prefix="scan", base_dir=None):
        """Validate a recipe's ``scan:`` section against the loader's parameters.

        Returns
        -------
        PtypyParams
            ``name``, ``file``, ``classname`` and every parameter of the loader
            class, its defaults filled in (so a dumped recipe loads back the same).
        """
        try:
            target, user, checked = _target(dict(section), prefix, base_dir)
        except ScanError as exc:
            raise RecipeError([f"{prefix}.file: {exc}"]) from None
        resolved = plain(validate_params(target.Params, user, prefix=prefix).model_dump())
        resolved.update(checked.model_dump(include={"name", "file", "classname"}))
        return validate_params(PtypyParams, resolved, prefix=prefix)

    def __new__(cls, pars=None, *, comm=None, **kwargs):
        values = explicit_values(pars)
        values.update(kwargs)
        target, user, checked = _target(values, "scan")
        log.info("ptypy: using %s from %s", target.__name__, checked.file)
        return target(as_tuples(user, target.TUPLE_KEYS), comm=comm)
