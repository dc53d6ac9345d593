"""``ptypy.core.paths.Paths``: only ``Paths(io).home``, which legacy loaders read."""

from __future__ import annotations

__all__ = ["Paths"]


class Paths:
    """``Paths(io).home``: the output folder of ptypy's ``io`` parameters (default ``./``)."""

    def __init__(self, io=None):
        self.home = dict(io or {}).get("home", "./")
