"""Compatibility with other ptychography packages' user code.

:mod:`ptyscan.compat.ptypy` is ptyscan's own implementation of the surface
that ptypy 0.9's beamline loaders use, and :class:`~ptyscan.compat.scan.PtypyScan`
(the ``ptypy`` scan) runs such a loader from its unmodified file.
"""

from __future__ import annotations

__all__: list[str] = []
