"""Relaxed Averaged Alternating Reflections (Luke, Inverse Problems 21, 37 (2005)), as
ptypy 0.9's RAAR.

RAAR is DM's iteration (:mod:`.dm`) with other coefficients of ptypy's generalised
Fourier update ``ψ += b · bw(fm · fw((1 - c) ψ + c P·O)) + a P·O - (a + b) ψ``:
``(a, b, c) = (1 - 2β, β, 2)`` with ``beta`` (default 0.75), where DM has
``(-α, 1, 1 + α)``; at ``beta = 1`` the two are the same iteration (DM with
``alpha = 1``). Everything else (relaxed modulus constraint, overlap loop,
inertia, support, MPI sums, residency) is DM's, with DM's parameter names.
"""

from __future__ import annotations

from .dm import DM
from .params import RAARParams

__all__ = ["RAAR", "RAARParams"]


class RAAR(DM):
    """RAAR engine: DM with ptypy's RAAR coefficients; see the module documentation.

    ``RAAR(params=None, *, backend=None, comm=None, state=None, **kwargs)``.
    """

    Params = RAARParams

    def _coefficients(self):
        beta = self.params.beta
        return (1.0 - 2.0 * beta, beta, 2.0)
