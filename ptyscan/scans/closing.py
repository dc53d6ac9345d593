"""A scan that holds files open closes them when it delivers EOS."""

from __future__ import annotations

from ..chunk import EOS

__all__ = ["ClosesAtEnd"]


class ClosesAtEnd:
    """Mixin for a :class:`~ptyscan.scan.PtyScan` with a ``close()`` method: ``auto`` calls
    it once the scan has delivered EOS (the files reopen when needed)."""

    def auto(self, frames):
        out = super().auto(frames)
        if out is EOS:
            self.close()
        return out
