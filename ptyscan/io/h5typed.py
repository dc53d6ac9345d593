"""ptypy's typed HDF5 values (its ``h5rw`` conventions), used by ``.ptyd`` files.

Every node carries a ``type`` attribute: ``dict`` groups; ``array``, ``scalar``,
``string``, ``None`` (a float64 (1,) placeholder) and ``arraylist`` datasets;
``list``/``tuple`` groups with ``00000``-style keys. Writing and reading follow
it so that ptypy reads our files and we read ptypy's. :func:`dataset_names` lists
every dataset of a file (for messages that say what is there).
"""

from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Mapping

import h5py
import numpy as np

from ..errors import PtydError

__all__ = ["dataset_names", "read_typed", "set_type", "write_typed"]

logger = logging.getLogger(__name__)


def dataset_names(handle) -> list[str]:
    """Paths of every dataset below the open HDF5 file or group ``handle``."""
    names = []
    handle.visititems(
        lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
    )
    return names


_SLASH = "_SLASH_"
_NUMERIC = "biufc"


def write_typed(group, key, value):
    """Store ``value`` as ``group[key]`` with ptypy's ``type`` attribute.

    Parameters
    ----------
    group : h5py.Group
        Where to store; ``key`` must be free. A ``/`` in ``key`` is escaped
        as ptypy does (``_SLASH_`` and an ``escaped`` attribute).
    key : str
    value : dict, str, None, bool, int, float, complex, NumPy scalar, numeric
        ndarray, list or tuple of these, or os.PathLike (stored as str).
        A list/tuple of numbers of one type becomes an ``arraylist``/
        ``arraytuple`` dataset, any other a ``list``/``tuple`` group.

    Returns
    -------
    h5py.Group or h5py.Dataset
    """
    try:
        node = _store(group, key.replace("/", _SLASH), value)
    except (ValueError, TypeError) as exc:  # NUL in a string, name in use, ...
        raise PtydError(
            f"{group.file.filename}: cannot store {_where(group, key)}: {exc}"
        ) from exc
    if "/" in key:
        node.attrs["escaped"] = "1"
    return node


def _store(group, key, value):
    value = os.fspath(value) if isinstance(value, os.PathLike) else value
    if value is None:
        return set_type(group.create_dataset(key, data=np.zeros(1)), "None")
    if isinstance(value, str):
        return set_type(group.create_dataset(key, data=value, dtype=h5py.string_dtype()), "string")
    if isinstance(value, Mapping):
        node = set_type(group.create_group(key), "dict")
        for k, v in value.items():
            if not isinstance(k, str):
                raise PtydError(f"{group.file.filename}: {node.name}: key {k!r} is not a str")
            write_typed(node, k, v)
        return node
    if isinstance(value, (list, tuple)):
        return _store_sequence(group, key, value)
    if isinstance(value, np.ndarray) and value.dtype.kind in _NUMERIC:
        gzip = {"compression": "gzip"} if value.ndim and value.size else {}
        return set_type(group.create_dataset(key, data=value, **gzip), "array")
    if _is_number(value) and np.asarray(value).dtype.kind in _NUMERIC:
        return set_type(group.create_dataset(key, data=np.asarray(value)), "scalar")
    raise PtydError(
        f"{group.file.filename}: cannot store {_where(group, key)}: got "
        f"{type(value).__name__}, expected dict, str, None, a number, a numeric ndarray, "
        "list or tuple (hint: convert it, e.g. to str)"
    )


def _store_sequence(group, key, value):
    kind = "list" if isinstance(value, list) else "tuple"
    if value and len({type(v) for v in value}) == 1 and _is_number(value[0]):
        array = np.asarray(value)
        if array.dtype.kind in _NUMERIC:
            dset = group.create_dataset(key, data=array, compression="gzip")
            return set_type(dset, "array" + kind)
    node = set_type(group.create_group(key), kind)
    for i, item in enumerate(value):
        write_typed(node, f"{i:05d}", item)
    return node


def _is_number(value):
    return isinstance(value, (numbers.Number, np.bool_))


def _where(group, key):
    return f"{group.name.rstrip('/')}/{key}"


def set_type(node, kind):
    """Give an HDF5 node ptypy's ``type`` attribute ``kind``; return the node."""
    node.attrs["type"] = kind
    return node


def _decode(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def read_typed(node):
    """Read a node written by :func:`write_typed` or by ptypy's ``h5write``.

    Parameters
    ----------
    node : h5py.Group or h5py.Dataset

    Returns
    -------
    object
        dict (``dict`` and untyped groups; dangling links left out with a
        warning), list, tuple, None, str, a Python scalar (``scalar``) or an
        ndarray (``array`` and untyped datasets).

    Raises
    ------
    PtydError
        For types that are never loaded (``pickle``, ``record_array``).
    """
    kind = _decode(node.attrs.get("type"))
    if isinstance(node, h5py.Group):
        if kind in (None, "dict", "param", "ordered_dict"):
            return _read_dict(node)
        if kind in ("list", "tuple"):
            items = [read_typed(node[k]) for k in sorted(node)]
            return items if kind == "list" else tuple(items)
    elif kind == "None":
        return None
    elif kind in ("string", "unicode"):
        return _decode(node[()])
    elif kind == "scalar":
        value = node[()]
        return _decode(value.item() if isinstance(value, np.generic) else value)
    elif kind in ("arraylist", "arraytuple"):
        array = node[...]
        items = array.tolist() if array.ndim == 1 else list(array)
        return items if kind == "arraylist" else tuple(items)
    elif kind in (None, "array"):
        array = node[...]
        return _decode(array.item()) if array.dtype.kind in "SO" and not array.ndim else array
    raise PtydError(
        f"{node.file.filename}: {node.name} has type {kind!r}; expected dict, list, tuple, "
        "None, string, scalar, array, arraylist or arraytuple (pickles are never loaded)"
    )


def _read_dict(group):
    out = {}
    for name in group:
        child = group.get(name)
        if child is None:
            logger.warning("%s: %s/%s is a dangling link; left out", group.file, group.name, name)
            continue
        key = name.replace(_SLASH, "/") if child.attrs.get("escaped") is not None else name
        out[key] = read_typed(child)
    return out
