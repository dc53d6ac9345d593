"""``ptypy.io``: ``h5read`` and ``h5write`` of nested dicts, as ptypy loaders call them.

Groups are read as dicts and datasets as arrays (0-d datasets as NumPy
scalars, bytes as str). ptypy's own type tags (pickled objects, lists written
as groups) are not interpreted: loaders read beamline files, which have none.
"""

from __future__ import annotations

import glob
import os

import h5py
import numpy as np

__all__ = ["h5read", "h5write"]


def _read_node(node, *, depth, index):
    if isinstance(node, h5py.Group):
        if depth is not None and depth < 0:
            return {}
        deeper = None if depth is None else depth - 1
        return {k: _read_node(node[k], depth=deeper, index=index) for k in node}
    value = node[index] if index is not None and node.ndim else node[()]
    if isinstance(value, bytes):
        return value.decode()
    return value


def h5read(filename, *keys, doglob=None, depth=None, slice=None, **kwargs):
    """Read ``filename`` (or the ``keys`` in it) into a dict.

    Parameters
    ----------
    filename : str
        HDF5 file; with ``doglob`` (default: when it contains ``*``) a glob
        pattern, reading every match into a dict keyed by file name.
    *keys : str
        Paths inside the file (``'entry/instrument'``); the result holds each
        under its path. None: the whole file.
    depth : int, optional
        Levels of groups to descend into.
    slice : index, optional
        Applied to each dataset read (``slice=(0,)`` reads the first frame).

    Returns
    -------
    dict
    """
    filename = os.path.abspath(os.path.expanduser(filename))
    if doglob is None:
        doglob = "*" in filename
    if doglob:
        return {
            f: h5read(f, *keys, doglob=False, depth=depth, slice=slice)
            for f in glob.glob(filename)
        }
    keys = [k for k in keys if k is not None]
    with h5py.File(filename, "r") as fh:
        if not keys:
            return _read_node(fh, depth=depth, index=slice)
        out = {}
        for key in keys:
            if key not in fh:
                raise KeyError(f"h5read: {filename} has no {key!r}; top-level keys: {sorted(fh)}")
            out[key] = _read_node(fh[key], depth=depth, index=slice)
        return out


def _write_node(group, key, value):
    if hasattr(value, "keys"):
        sub = group.require_group(key)
        for k, v in value.items():
            _write_node(sub, str(k), v)
    elif value is None:
        group.create_dataset(key, data=h5py.Empty("f"))
    else:
        group.create_dataset(key, data=np.asarray(value) if not isinstance(value, str) else value)


def h5write(filename, d=None, **kwargs):
    """Write the nested dict ``d`` (and ``kwargs``) to a new HDF5 file ``filename``."""
    content = dict(d or {})
    content.update(kwargs)
    with h5py.File(os.path.abspath(os.path.expanduser(filename)), "w") as fh:
        for key, value in content.items():
            _write_node(fh, str(key), value)
