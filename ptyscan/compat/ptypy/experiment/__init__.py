"""``ptypy.experiment``: the ``register()`` decorator of ptypy loaders.

``@register()`` reads the class's ``Defaults:`` docstring block (and its bases')
into a validated pydantic ``Params`` model and sets ``DEFAULT``, the ptypy-style
:class:`~ptyscan.compat.ptypy.utils.Param` of the defaults. ptypy's global
registry of scan classes is not kept: ptyscan finds the class in the loader
file (``scan: {name: ptypy, file: ..., class: ...}``).
"""

from __future__ import annotations

from ....params import plain
from ...defaults import as_tuples, model_from_defaults, tuple_keys
from ..core.data import PtyScan
from ..utils.parameters import asParam

__all__ = ["PtyScan", "register"]


def register(name=None):
    """Class decorator: parameters from the docstring's ``Defaults:`` block.

    Parameters
    ----------
    name : str, optional
        The name given to the class in ptypy's registry (the ``name`` default
        when the block has no ``[name]`` section).
    """

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, PtyScan)):
            raise TypeError(
                f"register(): decorates a subclass of ptypy.core.data.PtyScan, got {cls!r:.60}"
            )
        model = model_from_defaults(
            cls, stop=PtyScan, base=PtyScan.Params, name=name or cls.__name__
        )
        cls.Params = model
        cls.TUPLE_KEYS = PtyScan.TUPLE_KEYS | tuple_keys(cls, stop=PtyScan)
        cls.DEFAULT = asParam(as_tuples(plain(model().model_dump()), cls.TUPLE_KEYS))
        return cls

    return decorate
