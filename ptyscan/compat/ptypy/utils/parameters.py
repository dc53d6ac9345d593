"""``Param``: the attribute dictionary that ptypy loaders keep their parameters in.

Our own implementation of the behaviour ptypy loaders rely on: keys as
attributes, dotted keys (``p['a.b']``), ``copy(depth)`` and
``update(other, in_place_depth=...)`` that merges nested groups in place.
"""

from __future__ import annotations

__all__ = ["Param", "asParam"]


class Param(dict):
    """A dict whose keys are also attributes; nested groups are Params too.

    Parameters
    ----------
    mapping : mapping or iterable of (key, value), optional
    **kwargs
        More keys.
    """

    def __init__(self, mapping=None, **kwargs):
        super().__init__()
        self.update(mapping, **kwargs)

    def __repr__(self):
        return f"Param({dict.__repr__(self)})"

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"Param has no key {name!r}; keys: {sorted(self)}") from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        del self[name]

    def __getitem__(self, key):
        if isinstance(key, str) and "." in key:
            head, rest = key.split(".", 1)
            group = dict.__getitem__(self, head)
            if not isinstance(group, Param):
                raise KeyError(key)
            return group[rest]
        return dict.__getitem__(self, key)

    def __setitem__(self, key, value):
        if isinstance(key, str) and "." in key:
            head, rest = key.split(".", 1)
            if not isinstance(dict.get(self, head), Param):
                dict.__setitem__(self, head, Param())
            dict.__getitem__(self, head)[rest] = value
            return
        dict.__setitem__(self, key, value)

    def __contains__(self, key):
        if isinstance(key, str) and "." in key:
            head, rest = key.split(".", 1)
            group = dict.get(self, head)
            return isinstance(group, Param) and rest in group
        return dict.__contains__(self, key)

    def __dir__(self):
        return list(self.keys())

    def __reduce__(self):
        return (type(self), (dict(self),))

    def copy(self, depth=0):
        """A copy; nested Params are copied too down to ``depth`` levels."""
        out = Param(self)
        if depth > 0:
            for key, value in out.items():
                if isinstance(value, Param):
                    dict.__setitem__(out, key, value.copy(depth - 1))
        return out

    def update(self, other=None, in_place_depth=0, Convert=False, **kwargs):
        """Like ``dict.update``; nested Params are merged in place ``in_place_depth`` deep.

        Parameters
        ----------
        other : mapping or iterable of (key, value), optional
        in_place_depth : int
            How many levels of nested Params are updated key by key instead of replaced.
        Convert : bool
            Turn plain dicts among the values into Params (ptypy's spelling).
        """
        items = []
        if other is not None:
            items = list(other.items()) if hasattr(other, "keys") else list(other)
        items += list(kwargs.items())
        for key, value in items:
            if Convert and hasattr(value, "keys") and not isinstance(value, Param):
                converted = Param()
                converted.update(value, in_place_depth - 1, Convert)
                value = converted
            current = dict.get(self, key) if key in self else None
            if in_place_depth > 0 and hasattr(value, "keys") and isinstance(current, Param):
                current.update(value, in_place_depth - 1, Convert)
            else:
                self[key] = value

    def todict(self) -> dict:
        """A plain dict, nested Params included."""
        return {k: v.todict() if isinstance(v, Param) else v for k, v in self.items()}


def asParam(obj):
    """``obj`` as a Param, nested mappings included."""
    out = Param()
    for key, value in dict(obj or {}).items():
        out[key] = asParam(value) if hasattr(value, "keys") else value
    return out
