"""ML's block passes with the numba kernels of :mod:`.ml_kernels` (a mixin of ML).

They serve the common ML setting: the Gaussian noise model, no mask, no floating
intensities, the quadratic line search from cached far fields, one object and one
probe mode, integer positions, one slice. For each block the gradient pass is
P·O of the views (one kernel), one FFT, the noise model's gradient field and both
errors (one kernel), one inverse FFT and both adjoint sums (one kernel); the
line search's curvature is the first-order term along the line with the second-order
term's share (one kernel), one FFT and the first-order share (one kernel). The array
code in ``engines/ml.py`` is the reference and serves every other case;
``tests/engines/test_eng_cpu_kernels.py`` compares the two.
"""

from __future__ import annotations

import threading

import numpy as np

from . import ml_kernels

__all__ = ["MLCpuKernels"]


class MLCpuKernels:
    """Mixin for :class:`~.ml.ML`: the numba versions of its gradient and curvature blocks."""

    def __init__(self, *args, **kwargs):
        self._scratch = threading.local()  # per engine and thread: goes with the engine
        super().__init__(*args, **kwargs)

    def _fused_ml(self, blk) -> bool:
        p = self.params
        return (
            p.ML_type == "gaussian"
            and not p.floating_intensities
            and self._fast_line
            and blk.vs.full_mask
            and self._fused_cpu(blk.vs)
        )

    def _fields_cpu(self, blk, reuse=None):
        """Far fields ``fw(P·O)`` and ``xi = bw(far · dL/dq)`` of a block, both (B, 1, 1, sy,
        sx), and the (2,) sums of L and of the 'fourier' error over its views. ``reuse``:
        the block's arrays of the last iteration, overwritten (fresh memory for each
        would be faulted in and zeroed again every iteration)."""
        st, bk = self._state, self.backend
        xp, op = bk.xp, st.operator
        shape = (len(blk), 1, 1, *st.frame)
        if _reusable(reuse, shape):
            far, xi = reuse["far"], reuse["xi"]
        else:
            far, xi = (xp.empty(shape, dtype=bk.complex_dtype) for _ in range(2))
        far = op.propagate(self._exit_waves_cpu(blk, far), overwrite=True)
        R = self.params.intensity_renormalization
        sums = ml_kernels.ml_gaussian(far[:, 0, 0], blk["data"], R, xi[:, 0, 0])
        return far, op.backpropagate(xi, overwrite=True), sums

    def _gradient_cpu(self, blk, g_o, g_p):
        """:meth:`~.ml.ML._gradient_block` with the kernels: adds the block's gradient
        into ``g_o``, ``g_p``; returns the (2,) sums of L and the 'fourier' error."""
        st, vs = self._state, blk.vs
        cache = None if vs.streamed else vs.cache.setdefault("blocks", {})
        reuse = cache.get(blk.sl.start) if cache is not None else None
        far, xi, sums = self._fields_cpu(blk, reuse)
        off = st.offsets(vs, blk.sl)
        ml_kernels.ml_adjoint(xi[:, 0, 0], st.object[0], st.probe[0], off, g_o[0], g_p[0])
        if cache is not None:
            cache[blk.sl.start] = {"far": far, "xi": xi}
        return sums

    def _curvature_cpu(self, blk, h_o, h_p):
        """:meth:`~.ml.ML._curvature_block` with the kernels (the t² coefficient of L)."""
        st, vs, sl = self._state, blk.vs, blk.sl
        if vs.streamed:
            far, xi, _ = self._fields_cpu(blk)
        else:
            cached = vs.cache["blocks"][sl.start]
            far, xi = cached["far"], cached["xi"]
        first = _scratch_like(self._scratch, far)
        off = st.offsets(vs, sl)
        args = (st.object[0], h_o[0], st.probe[0], h_p[0], off, xi[:, 0, 0], first[:, 0, 0])
        cross = ml_kernels.ml_taylor(*args)
        first = st.operator.propagate(first, overwrite=True)
        R = self.params.intensity_renormalization
        return cross + ml_kernels.ml_curvature(far[:, 0, 0], first[:, 0, 0], blk["data"], R)


def _reusable(cached, shape) -> bool:
    """A block's cached fused-path buffers (far, xi) can take this pass's fields: made by
    the fused path (no ``dldq``) for blocks of this shape."""
    return cached is not None and "dldq" not in cached and cached["far"].shape == shape


def _scratch_like(local, arr):
    """An array of ``arr``'s shape and dtype for this thread's scratch work (kept in
    ``local``, a ``threading.local``), reused from block to block (a prefix of the
    largest one yet): the line search's first-order waves stay in this core's cache,
    where an array kept per block would go out to memory and back every iteration."""
    buf = getattr(local, "buf", None)
    n = arr.shape[0]
    if buf is None or buf.dtype != arr.dtype or buf.shape[1:] != arr.shape[1:] or len(buf) < n:
        buf = local.buf = np.empty_like(arr)
    return buf[:n]
