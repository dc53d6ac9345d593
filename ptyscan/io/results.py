"""``.ptyr`` result files (HDF5, written atomically); pictures are in :mod:`ptyscan.io.plots`.

Layout::

    object            (M, oy, ox) complex    reconstructed object modes; a multislice
                      (M, S, oy, ox)         object (``object_slices`` S > 1) has its slices
    object_origin_px  (2,) int               object pixel (0, 0) in scan pixels
    probe             (K, sy, sx) complex    probe modes
    sample_pixel_m    (2,)                   object/probe pixel size, metres
    positions/indices (N,) int64
    positions/initial (N, 2) metres          as delivered by the scan
    positions/final   (N, 2) metres          after refinement (equal when not refined)
    history/<key>     (n_iter,) per-iteration errors (engine, iteration, fourier, ...)
    engines/<k>       attrs name, iterations_done: progress, for ``--resume``
    meta              attrs: the ScanMeta of the data
    recipe            the resolved recipe as YAML text
    latency/indices   (N,) int64   live runs whose scan knows when each frame was written:
    latency/seconds   (N,) float64 time from a frame's write to the end of the first engine
                      iteration that used it; attrs p50, p95, max (seconds)
    attrs             status ('final' | 'checkpoint' | 'interrupted' | 'preview'), backend,
                      ranks, created, versions
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import time
from pathlib import Path

import h5py
import numpy as np

from .._version import __version__
from ..errors import PtyScanError
from .atomic import atomic_path, check_space

__all__ = [
    "PtyrSink",
    "Result",
    "make_result",
    "projected_object",
    "read_ptypy_result",
    "read_ptyr",
    "read_result",
    "write_ptyr",
]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class Result:
    """Everything a ``.ptyr`` file holds (see the module docstring)."""

    object: np.ndarray
    probe: np.ndarray
    sample_pixel_m: np.ndarray
    object_origin_px: np.ndarray
    indices: np.ndarray
    positions_initial: np.ndarray
    positions_final: np.ndarray
    history: dict
    engines: list
    meta: dict
    recipe: str
    attrs: dict
    latency: dict | None = None
    """``{'indices', 'seconds', 'p50', 'p95', 'max'}`` for live runs, else None."""


def projected_object(obj):
    """(M, oy, ox): the product of the slices of a multislice (M, S, oy, ox) object (the
    projected object; its phase is the slices' summed phase); an (M, oy, ox) object as
    it is. NumPy or CuPy."""
    if obj.ndim < 4:
        return obj
    out = obj[:, 0].copy()
    for s in range(1, obj.shape[1]):
        out *= obj[:, s]
    return out


def _versions() -> dict:
    import scipy

    return {
        "ptyscan": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "h5py": h5py.__version__,
    }


def _final_positions(indices, positions, refined):
    """(N, 2) float64 ``positions`` of frames ``indices``, with the refined ones where
    ``refined`` (sorted indices, positions) has them."""
    final = np.array(positions, np.float64).reshape(-1, 2)
    if refined is None or len(refined[0]) == 0:
        return final
    known, moved = np.asarray(refined[0]), np.asarray(refined[1], np.float64)
    indices = np.asarray(indices, np.int64)
    where = np.minimum(np.searchsorted(known, indices), len(known) - 1)
    hit = known[where] == indices
    final[hit] = moved[where[hit]]
    return final


def _history_arrays(history: list[dict]) -> dict:
    keys = []
    for record in history:
        keys += [k for k in record if k not in keys]
    out = {}
    for key in keys:
        values = [record.get(key) for record in history]
        if all(isinstance(v, str) for v in values):
            out[key] = np.array(values, dtype=h5py.string_dtype())
        else:
            out[key] = np.array([np.nan if v is None else v for v in values], np.float64)
    return out


def write_ptyr(path, result: Result) -> Path:
    """Write ``result`` to ``path`` atomically (temporary file, fsync, rename); an
    :class:`~ptyscan.errors.OutputError` when it would not fit (the old file stays)."""
    need = result.object.nbytes + result.probe.nbytes + (256 << 10)  # + history, meta
    check_space(path, need, key="result", intact=f"the previous {Path(path).name} is intact")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _fill(f, result)
    return Path(path)


class PtyrSink:
    """The ``.ptyr`` result format as a :class:`~ptyscan.io.sinks.ResultSink`."""

    suffix = ".ptyr"

    @staticmethod
    def write(path, result: Result) -> Path:
        """:func:`write_ptyr`."""
        return write_ptyr(path, result)


def _fill(f, r: Result):
    f.create_dataset("object", data=r.object, compression="gzip", shuffle=True)
    f.create_dataset("probe", data=r.probe)
    f["object_origin_px"] = np.asarray(r.object_origin_px, np.int64)
    f["sample_pixel_m"] = np.asarray(r.sample_pixel_m, np.float64)
    pos = f.create_group("positions")
    pos["indices"] = np.asarray(r.indices, np.int64)
    pos["initial"] = np.asarray(r.positions_initial, np.float64)
    pos["final"] = np.asarray(r.positions_final, np.float64)
    hist = f.create_group("history")
    for key, values in r.history.items():
        hist[key] = values
    eng = f.create_group("engines")
    for k, info in enumerate(r.engines):
        g = eng.create_group(str(k))
        for key, value in info.items():
            g.attrs[key] = value
    meta = f.create_group("meta")
    for key, value in r.meta.items():
        meta.attrs[key] = "None" if value is None else value
    f["recipe"] = r.recipe
    for key, value in r.attrs.items():
        f.attrs[key] = value
    if r.latency is not None:
        lat = f.create_group("latency")
        lat["indices"] = np.asarray(r.latency["indices"], np.int64)
        lat["seconds"] = np.asarray(r.latency["seconds"], np.float64)
        for key in ("p50", "p95", "max"):
            lat.attrs[key] = float(r.latency[key])


def make_result(
    *,
    engine,
    engines_progress,
    history,
    indices,
    positions,
    meta,
    recipe_yaml,
    status,
    ranks,
    devices=None,
    refined=None,
):
    """Build a :class:`Result` from a running engine (collective-free: host arrays only).

    ``devices``: the CUDA device of each rank (stored on CuPy as the ``devices`` attribute).
    ``refined``: ``(indices, positions_m)`` the engine holds now (``engine.positions``,
    sorted by index): ``positions/final`` of those frames; others keep ``positions``.
    """
    st = engine.state
    meta_dict = dataclasses.asdict(meta)
    meta_dict = {k: (np.asarray(v) if isinstance(v, tuple) else v) for k, v in meta_dict.items()}
    attrs = {
        "status": status,
        "backend": engine.backend.name,
        "ranks": int(ranks),
        **(
            {"devices": np.asarray(devices, np.int64)} if engine.backend.is_gpu and devices else {}
        ),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **{f"version_{k}": v for k, v in _versions().items()},
    }
    return Result(
        object=engine.object,
        probe=engine.probe,
        sample_pixel_m=np.asarray(st.sample_pixel_m, np.float64),
        object_origin_px=np.asarray(st.origin_px, np.int64),
        indices=np.asarray(indices, np.int64),
        positions_initial=np.asarray(positions, np.float64),
        positions_final=_final_positions(indices, positions, refined),
        history=_history_arrays(history),
        engines=engines_progress,
        meta=meta_dict,
        recipe=recipe_yaml,
        attrs=attrs,
    )


def read_ptyr(path) -> Result:
    """Read a ``.ptyr`` file; PtyScanError naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise PtyScanError(f"{path}: no such result file")
    try:
        with h5py.File(path, "r") as f:
            history = {k: _decode(v[()]) for k, v in f["history"].items()}
            engines = [dict(f["engines"][k].attrs) for k in sorted(f["engines"], key=int)]
            return Result(
                object=f["object"][()],
                probe=f["probe"][()],
                sample_pixel_m=f["sample_pixel_m"][()],
                object_origin_px=f["object_origin_px"][()],
                indices=f["positions/indices"][()],
                positions_initial=f["positions/initial"][()],
                positions_final=f["positions/final"][()],
                history=history,
                engines=[{k: _decode(v) for k, v in e.items()} for e in engines],
                meta={k: _decode(v) for k, v in f["meta"].attrs.items()},
                recipe=_decode(f["recipe"][()]),
                attrs={k: _decode(v) for k, v in f.attrs.items()},
                latency=_read_latency(f),
            )
    except (OSError, KeyError) as exc:
        raise PtyScanError(f"{path}: not a ptyscan .ptyr result file ({exc})") from None


def _read_latency(f) -> dict | None:
    if "latency" not in f:
        return None
    lat = f["latency"]
    out = {k: float(v) for k, v in lat.attrs.items()}
    return {"indices": lat["indices"][()], "seconds": lat["seconds"][()], **out}


def read_result(path) -> Result:
    """A result to start from, told apart by content (not by name): our ``.ptyr``,
    ptypy's (:func:`read_ptypy_result`) or PtyRAD's model file
    (:func:`ptyscan.io.ptyrad.read_ptyrad_result`)."""
    from .ptyrad import is_ptyrad_result, read_ptyrad_result

    path = Path(path)
    if path.is_file() and h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            ptypy = "content" in f and "header" in f
            ptyrad = is_ptyrad_result(f)
        if ptypy:
            return read_ptypy_result(path)
        if ptyrad:
            return read_ptyrad_result(path)
    return read_ptyr(path)


def read_ptypy_result(path) -> Result:
    """ptypy's ``.ptyr`` (``save_run``, kinds 'minimal'/'dump') as a :class:`Result`.

    The first object and probe storages give ``object`` (layers, y, x), ``probe``,
    ``sample_pixel_m`` (the storage's psize) and ``object_origin_px`` (its
    physical origin over psize, rounded); positions and history are empty.
    """
    from .h5typed import read_typed

    try:
        with h5py.File(path, "r") as f:
            content = f["content"]
            obj = read_typed(content["obj"][sorted(content["obj"])[0]])
            probe = read_typed(content["probe"][sorted(content["probe"])[0]])
    except (OSError, KeyError, IndexError) as exc:
        raise PtyScanError(
            f"{path}: not a ptypy .ptyr with content/obj and content/probe ({exc})"
        ) from None
    pixel = np.broadcast_to(np.asarray(obj.get("_psize", obj.get("psize")), np.float64), (2,))
    origin = np.asarray(obj.get("_origin", obj.get("origin", (0.0, 0.0))), np.float64)
    empty = np.zeros((0, 2))
    return Result(
        object=np.asarray(obj["data"]),
        probe=np.asarray(probe["data"]),
        sample_pixel_m=pixel.copy(),
        object_origin_px=np.round(origin / pixel).astype(np.int64),
        indices=np.zeros(0, np.int64),
        positions_initial=empty,
        positions_final=empty,
        history={},
        engines=[],
        meta={},
        recipe="",
        attrs={"status": "ptypy", "source": str(path)},
    )


def _decode(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return np.array([v.decode() if isinstance(v, bytes) else v for v in value])
    if isinstance(value, str) and value == "None":
        return None
    return value
