"""Position refinement: ptypy's ``position_refinement`` block, in every engine.

After an iteration ``i`` with ``start <= i < stop`` and ``(i - start) % interval == 0``
(None: ``start`` 0, ``stop`` the engine's ``numiter``), every rank moves its own views
(the object and probe stay as they are and shared, so nothing crosses ranks but a
summary). The step bound is ``amplitude``, times ``(stop - i) / (stop - start)`` with
``amplitude_decay``; no view goes further than ``max_shift`` from its initial position
(ptypy bounds each trial instead, its documentation the distance from the original),
nor outside the object array (``object_margin_px``).

Methods (``position_refinement.method``):

'annealing'
    Maiden et al., Ultramicroscopy 120, 64 (2012), as ptypy's ``AnnealingRefine``:
    ``nshifts`` trial moves per view, trial ``t`` in quadrant ``((-1)^t, (-1)^(t//2))``
    with each axis uniform in ``[0, amplitude]`` metres (ptypy: ``[1 pixel, amplitude]``,
    which never moves a view along one axis only); the view takes the allowed trial
    with the lowest error if it beats its current error (trials past ``max_shift`` or
    the object's edge are not taken). With ``subpixel: none`` views move by whole
    pixels and refinement waits while the amplitude is below half a pixel. The trials
    come from ``(seed, iteration, frame index)``: the same on any number of ranks.
    Error of a view (``metric``): 'fourier' ``Σ mask (|F| - sqrt(I))² / Σ mask``,
    'photon' ``Σ mask (|F|² - I)² / (I + 1) / pixels``, ``|F|²`` summed over modes.
'gridsearch'
    ptypy's ``GridSearch``: every whole-pixel move ``(ky, kx)`` with ``|k| <= n``,
    ``n = ceil(amplitude / pixel)``, and ``ky² + kx² < ceil(max_shift / pixel)²`` (pixel: the
    smaller sample pixel side; a move is ``k`` times each axis' pixel) is tried from the
    view's current position; the view takes the allowed move with the lowest error if it
    beats its current error (the error and the limits as for 'annealing'; ``nshifts`` and
    ``seed`` are not used). Nothing moves while the amplitude is at most one pixel (as
    ptypy). A view costs ``(2n + 1)²`` forward models per refinement at most.
'gradient'
    A Gauss-Newton step on the 'fourier' error: with exit waves ``ψ = P·v(s)`` and
    ``r = bw(Π fw(ψ)) - ψ`` (``Π`` the modulus projection; ``|r|²`` is the error and
    ``-2 Re<J, r>`` its gradient w.r.t. the view's shift ``s``), ``J = P·∂v/∂s`` from the
    object's central-difference gradient, each view moves by ``step · (JᴴJ)⁻¹ Re Jᴴr``
    (a real 2×2 solve), its length capped at the (decayed) amplitude. Positions keep
    the fraction, so with ``subpixel: none`` small steps add up until the rounded view
    moves. A step past ``max_shift`` is pulled back onto that circle.

The positions live in the view sets (``positions_m`` metres; ``pos_px``/``frac``
their pixels, :func:`ptyscan.geometry.view_pixels`), so every later iteration and engine uses
them; ``initial_m`` keeps the scan's.
"""

from __future__ import annotations

import logging

import numpy as np

from ..geometry import view_pixels
from . import ops

__all__ = ["amplitude_at", "grid_moves", "refine_positions", "rms_shift_px"]

log = logging.getLogger(__name__)


def amplitude_at(pr, iteration, numiter) -> float | None:
    """The step bound (metres) of a refinement after ``iteration``, or None when
    ``pr`` (:class:`~.params.PositionRefinementParams` or None) does not refine then."""
    if pr is None:
        return None
    start = 0 if pr.start is None else pr.start
    stop = numiter if pr.stop is None else pr.stop
    if not start <= iteration < stop or (iteration - start) % pr.interval:
        return None
    if not pr.amplitude_decay:
        return pr.amplitude
    return pr.amplitude * (stop - iteration) / (stop - start)


def refine_positions(state, pr, *, iteration, amplitude_m, block_size) -> None:
    """Move this rank's views of ``state`` by ``pr.method`` (module notes); not collective."""
    if pr.method == "gradient":
        _gradient(state, pr, amplitude_m, block_size)
    elif pr.method == "gridsearch":
        moves = grid_moves(pr, amplitude_m, state.sample_pixel_m)
        if len(moves):
            _search(state, pr, block_size, lambda indices: moves, len(moves), "grid search")
    else:
        if not state.subpixel and amplitude_m < 0.5 * float(np.min(state.sample_pixel_m)):
            return  # no trial would move a rounded view

        def trials(indices):
            return _trials(pr, iteration, indices, 0.0, amplitude_m)

        _search(state, pr, block_size, trials, pr.nshifts, "annealing")


def rms_shift_px(state) -> float:
    """RMS distance (sample pixels) of all views of all ranks from their initial
    positions; collective."""
    buf = np.zeros(2)
    for vs in state.viewsets:
        d = (vs.positions_m - vs.initial_m) / state.sample_pixel_m
        buf += (np.sum(d * d), len(vs))
    ops.allreduce(state.backend, state.comm, buf)
    return float(np.sqrt(buf[0] / max(buf[1], 1.0)))


# --- geometry ----------------------------------------------------------------------------


def _offsets(state, positions_m):
    """Object-array offsets of views at ``positions_m`` (B, 2) and whether they fit."""
    whole, frac = view_pixels(positions_m, state.sample_pixel_m, state.frame, state.subpixel)
    off = whole - state.origin_px
    extra = 0 if frac is None else 1
    room = np.array(state.object.shape[-2:]) - np.array(state.frame) - extra
    fits = np.all((off >= 0) & (off <= room), axis=1)
    return (off if frac is None else off + frac), fits


def _set(state, vs, positions_m):
    """Give ``vs`` the positions ``positions_m`` (new arrays: copies share the old)."""
    vs.positions_m = np.array(positions_m, np.float64)
    vs.pos_px, vs.frac = view_pixels(
        vs.positions_m, state.sample_pixel_m, state.frame, state.subpixel
    )


def _within(pr, vs, sl, positions_m):
    """(B,) bool: ``positions_m`` no further than ``max_shift`` from the initial ones."""
    dist = np.linalg.norm(positions_m - vs.initial_m[sl], axis=1)
    return dist <= pr.max_shift * (1 + 1e-9)


# --- annealing ---------------------------------------------------------------------------


def _view_errors(state, offsets, data, mask, metric):
    """(B,) host float64 error of each view at ``offsets`` (module notes)."""
    xp = state.backend.xp
    model = ops.mode_sum(ops.abs2(xp, state.operator.forward(state.object, state.probe, offsets)))
    if metric == "photon":
        dev = model - data
        return (
            state.backend.to_host(
                xp.sum(mask * dev * dev / (data + 1), axis=(-2, -1), dtype=np.float64)
            )
            / state.npix
        )
    dev = xp.sqrt(model) - xp.sqrt(data)
    total = xp.sum(mask * dev * dev, axis=(-2, -1), dtype=np.float64)
    count = xp.sum(xp.broadcast_to(mask, dev.shape), axis=(-2, -1), dtype=np.float64)
    return state.backend.to_host(total / xp.maximum(count, 1.0))


def _trials(pr, iteration, indices, lo, hi):
    """(B, nshifts, 2) trial moves (metres) of the views with frame ``indices``."""
    u = np.stack(
        [
            np.random.default_rng([pr.seed, iteration, int(i)]).random((pr.nshifts, 2))
            for i in indices
        ]
    ).reshape(len(indices), pr.nshifts, 2)
    t = np.arange(pr.nshifts)
    signs = np.stack([(-1.0) ** t, (-1.0) ** (t // 2)], axis=1)  # (nshifts, 2)
    return signs * (lo + u * (hi - lo))


def grid_moves(pr, amplitude_m, pixel_m) -> np.ndarray:
    """(T, 2) moves (metres) of the grid search at step bound ``amplitude_m`` (module
    notes); none while the bound is at most one pixel."""
    pixel_m = np.asarray(pixel_m, np.float64)
    step = float(np.min(pixel_m))
    if amplitude_m <= step * (1 + 1e-9):
        return np.zeros((0, 2))
    n = int(np.ceil(amplitude_m / step * (1 - 1e-9)))
    bound = np.ceil(pr.max_shift / step * (1 - 1e-9))
    k = np.stack(np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij"), -1)
    k = k.reshape(-1, 2)
    k = k[(np.sum(k * k, axis=1) < bound * bound) & np.any(k != 0, axis=1)]
    return k * pixel_m


def _search(state, pr, block_size, moves, count, name):
    """Try ``count`` moves per view (``moves(frame indices)``: (T, 2) for all views or
    (B, T, 2) per view, metres); each view takes its best allowed one if it lowers the
    view's error (module notes)."""
    moved = 0
    for blk in state.blocks(block_size, read=("data", "mask")):
        vs, sl = blk.vs, blk.sl
        data, mask = blk["data"], blk["mask"]
        current = vs.positions_m[sl]
        best = _view_errors(state, state.offsets(vs, sl), data, mask, pr.metric)
        best_pos = current.copy()
        trials = np.asarray(moves(vs.indices[sl]))
        if trials.ndim == 2:
            trials = np.broadcast_to(trials, (len(current), *trials.shape))
        for t in range(count):
            cand = current + trials[:, t]
            off, ok = _offsets(state, cand)
            ok &= _within(pr, vs, sl, cand)
            if not ok.any():
                continue
            off[~ok] = state.offsets(vs, sl)[~ok]  # evaluated, never taken
            err = _view_errors(state, off, data, mask, pr.metric)
            better = ok & (err < best)
            best = np.where(better, err, best)
            best_pos[better] = cand[better]
        moved += int(np.sum(np.any(best_pos != current, axis=1)))
        new = vs.positions_m.copy()
        new[sl] = best_pos
        _set(state, vs, new)
    log.debug("position refinement (%s): %d views moved", name, moved)


# --- gradient ----------------------------------------------------------------------------


def _object_gradient(xp, obj):
    """Central differences ``(∂O/∂y, ∂O/∂x)`` (one-sided at the edges), each (M, oy, ox)."""
    rows = _row_difference(xp, obj)
    cols = _row_difference(xp, obj.swapaxes(-1, -2)).swapaxes(-1, -2)
    return rows, xp.ascontiguousarray(cols)


def _row_difference(xp, a):
    """Central difference of ``a`` (M, n, k) along axis 1, one-sided at both ends."""
    out = xp.zeros_like(a)
    out[:, 1:-1] = (a[:, 2:] - a[:, :-2]) / 2
    out[:, 0] = a[:, 1] - a[:, 0]
    out[:, -1] = a[:, -1] - a[:, -2]
    return out


def _gauss_newton_shifts(state, grads, offsets, data, mask):
    """(B, 2) host shifts (pixels) minimising ``|r - J s|²`` per view (module notes)."""
    bk, op = state.backend, state.operator
    xp = bk.xp
    psi = op.exit_waves(state.object, state.probe, offsets)
    far = op.propagate(psi)
    amp = xp.sqrt(ops.mode_sum(ops.abs2(xp, far)))
    factor = mask * xp.sqrt(data) / (amp + 1e-10) + (1 - mask)
    resid = op.backpropagate(far * factor[:, None, None], overwrite=True) - psi
    jac = [op.exit_waves(g, state.probe, offsets) for g in grads]
    axes = tuple(range(1, psi.ndim))

    def dot(a, b):
        return bk.to_host(xp.sum((xp.conj(a) * b).real, axis=axes, dtype=np.float64))

    hess = np.empty((len(psi), 2, 2))
    hess[:, 0, 0], hess[:, 1, 1] = dot(jac[0], jac[0]), dot(jac[1], jac[1])
    hess[:, 0, 1] = hess[:, 1, 0] = dot(jac[0], jac[1])
    rhs = np.stack([dot(jac[0], resid), dot(jac[1], resid)], axis=1)
    det = hess[:, 0, 0] * hess[:, 1, 1] - hess[:, 0, 1] ** 2
    scale = np.trace(hess, axis1=1, axis2=2)
    ok = det > 1e-12 * np.maximum(scale * scale, 1e-300)
    shifts = np.zeros((len(psi), 2))
    shifts[ok] = np.linalg.solve(hess[ok], rhs[ok][..., None])[..., 0]
    return shifts


def _gradient(state, pr, amplitude_m, block_size):
    grads = _object_gradient(state.backend.xp, state.object)
    for blk in state.blocks(block_size, read=("data", "mask")):
        vs, sl = blk.vs, blk.sl
        shift_px = pr.step * _gauss_newton_shifts(
            state, grads, state.offsets(vs, sl), blk["data"], blk["mask"]
        )
        shift_m = shift_px * state.sample_pixel_m
        length = np.linalg.norm(shift_m, axis=1, keepdims=True)
        shift_m *= np.minimum(1.0, amplitude_m / np.maximum(length, 1e-300))
        start = vs.initial_m[sl]
        cand = vs.positions_m[sl] + shift_m - start  # from the start, within max_shift:
        dist = np.linalg.norm(cand, axis=1, keepdims=True)
        cand = start + cand * np.minimum(1.0, pr.max_shift / np.maximum(dist, 1e-300))
        ok = _offsets(state, cand)[1]
        new = vs.positions_m.copy()
        new[sl][ok] = cand[ok]
        _set(state, vs, new)
