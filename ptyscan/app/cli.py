"""The ``ptyscan`` command: ``prepare``, ``simulate``, ``run``, ``show``, ``export``, ``info``,
``scans``, ``schema``.

Bad input ends with exit code 2 and a one-line (or one-per-problem) message;
``--debug`` shows the traceback. Under MPI an error on any rank aborts every
rank.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import functools
import logging
import os
import sys
import textwrap

from .._version import __version__
from ..errors import (
    ParameterError,
    PeerError,
    PtyScanError,
    RecipeError,
    RunInterruptedError,
    closest_name,
)
from ..registry import ENGINES, RESULT_FORMATS, SCANS

__all__ = ["build_parser", "main"]

log = logging.getLogger("ptyscan")


def _recipe(args):
    """The recipe named on the command line, with --set overrides and --no-progress."""
    from ..recipe import load_recipe

    recipe = load_recipe(args.recipe, overrides=args.set)
    if args.no_progress:
        recipe = dataclasses.replace(recipe, run=recipe.run.model_copy(update={"progress": False}))
    return recipe


def _add_recipe_arguments(parser, example):
    parser.add_argument("recipe", help="YAML recipe file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a recipe value, e.g. --set {example} (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _cmd_prepare(args, comm):
    from .runner import prepare

    recipe = _recipe(args)
    summary = prepare(recipe, comm=comm)
    if comm.rank == 0:
        print(
            f"prepared {summary.frames} frames in {summary.chunks} chunks, "
            f"{summary.seconds:.2f} s ({summary.frames_per_s:.0f} frames/s), "
            f"{summary.ranks} rank(s) -> {summary.dfile}"
        )
    return 0


def _cmd_run(args, comm):
    from .runner import run_recipe

    recipe = _recipe(args)
    summary = run_recipe(recipe, comm=comm, resume=args.resume)
    if comm.rank == 0:
        streamed = summary.streaming_iterations
        errors = ", ".join(
            f"{k} {summary.last_errors[k]:.4g}"
            for k in ("fourier", "photons", "exit")
            if summary.last_errors.get(k)  # ML has no exit waves: no exit error
        )
        print(
            f"reconstructed {summary.frames} frames, {summary.iterations} iterations"
            + (
                f" ({streamed} while frames streamed in, {summary.after_last_frame} after the last)"
                if streamed
                else ""
            )
            + " in "
            f"{summary.seconds:.1f} s on {summary.ranks} rank(s)"
            + (f" ({summary.loader_ranks} loading)" if summary.loader_ranks else "")
            + f" -> {summary.result}"
            + (f" (last errors: {errors})" if errors else "")
        )
        if summary.latency is not None:
            from .live import latency_line

            print(latency_line(summary.latency))
    return 0


def _cmd_show(args, comm):
    from ..io.plots import save_plots
    from ..io.results import read_ptyr

    result = read_ptyr(args.result)
    names = save_plots(result, args.result)
    last = {k: float(v[-1]) for k, v in result.history.items() if len(v) and v.dtype.kind == "f"}
    devices = result.attrs.get("devices")
    where = "" if devices is None else " on CUDA device(s) " + ",".join(str(d) for d in devices)
    print(
        f"{args.result}: {result.attrs.get('status')} result, "
        f"backend {result.attrs.get('backend')}{where}, {result.attrs.get('ranks')} rank(s)"
    )
    print(
        f"  object {result.object.shape}, probe {result.probe.shape}, {len(result.indices)} frames"
    )
    print(
        "  last errors: "
        + ", ".join(f"{k} {last[k]:.4g}" for k in ("fourier", "photons", "exit") if k in last)
    )
    for path in names.values():
        print(f"  wrote {path}")
    return 0


def _cmd_simulate(args, comm):
    from .simulate import simulate_recipe

    recipe = _recipe(args)
    if args.live is not None:
        return _simulate_live(args, recipe, comm)
    out = simulate_recipe(recipe, comm=comm)
    if comm.rank == 0:
        print(
            f"simulated {out['frames']} frames in {out['chunks']} chunks, {out['seconds']:.2f} s, "
            f"{out['ranks']} rank(s) -> {out['dfile']} (truth: {out['truth']})"
        )
    return 0


def _simulate_live(args, recipe, comm):
    from .live_writer import simulate_live

    if comm.size > 1:
        raise ParameterError("simulate --live: runs on one process; start it without mpiexec")
    path = args.to or os.path.join(recipe.run.output_dir, f"{recipe.stem}.live.h5")
    out = simulate_live(
        recipe, rate_hz=args.live, path=path, zmq=args.zmq, stall_after=args.stall_after
    )
    print(
        f"wrote {out['frames']} frames live in {out['seconds']:.2f} s "
        f"({out['rate_hz']:.0f} frames/s) -> {out['path']}"
    )
    return 0


def _cmd_export(args, comm):
    from ..io.results import read_ptyr
    from ..io.sinks import result_sinks

    result = read_ptyr(args.result)
    for name in args.format:
        ((sink, path),) = result_sinks([name], args.result)
        out = sink.write(args.output or path, result)
        print(f"wrote {out} ({name})")
    return 0


def _cmd_info(args, comm):
    from ..io.ptyd_read import describe_ptyd

    print(describe_ptyd(args.file))
    return 0


def _cmd_scans(args, comm):
    names = SCANS.names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {SCANS.summary(name)}")
    return 0


def _schema_model(name):
    from ..recipe import RunParams

    if name == "run":
        return RunParams
    if name in ENGINES.names():
        return ENGINES.get(name).Params
    if name in SCANS.names():
        return SCANS.get(name).Params
    known = [*SCANS.names(), *ENGINES.names(), "run"]
    near = closest_name(name, known)
    hint = f" (did you mean '{near}'?)" if near else ""
    raise ParameterError(
        f"schema: unknown scan class, engine or section {name!r}{hint}; "
        f"available: {', '.join(known)}"
    )


def _cmd_schema(args, comm):
    from ..params import describe_fields

    model = _schema_model(args.name)
    rows = describe_fields(model)
    width = max(len(r[0]) for r in rows)
    print(f"{args.name} parameters (name, default, description; units in the text):")
    for key, default, text in rows:
        print(f"  {key:<{width}}  = {default}")
        for line in textwrap.wrap(" ".join(text.split()), 88):
            print(f"  {'':<{width}}    {line}")
    return 0


def _add_output_options(parser, *, default):
    """--debug and -q/--quiet (before or after the command: ``ptyscan run x.yaml -q``)."""
    parser.add_argument(
        "--debug", action="store_true", default=default, help="show tracebacks and debug logs"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="only warnings and errors"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptyscan",
        description="Prepare, simulate and reconstruct ptychography scans from YAML recipes; "
        "inspect .ptyd and .ptyr files.",
    )
    parser.add_argument("--version", action="version", version=f"ptyscan {__version__}")
    _add_output_options(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)  # the same options after the command
    _add_output_options(common, default=argparse.SUPPRESS)
    sub.add_parser = functools.partial(sub.add_parser, parents=[common])

    p = sub.add_parser("prepare", help="prepare a scan from a recipe and save a .ptyd file")
    _add_recipe_arguments(p, "scan.shape=64")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser(
        "simulate", help="simulate a scan from a recipe: a .ptyd file and a truth file"
    )
    _add_recipe_arguments(p, "scan.shape=64")
    p.add_argument(
        "--live",
        type=float,
        metavar="RATE_HZ",
        help="write the frames one by one into an HDF5 SWMR file at RATE_HZ frames/s "
        "(an acquisition that `ptyscan run` on a live recipe follows)",
    )
    p.add_argument(
        "--to", metavar="FILE", help="--live: the HDF5 file (default <output_dir>/<name>.live.h5)"
    )
    p.add_argument(
        "--zmq",
        metavar="ADDRESS",
        help="--live: push the frames over ZeroMQ from ADDRESS (e.g. tcp://*:5555) "
        "instead of a file; read them with scan ZmqScan (needs pyzmq)",
    )
    p.add_argument(
        "--stall-after",
        type=int,
        metavar="N",
        help="--live: stop writing after N frames and hang (a stalled detector, for drills)",
    )
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("run", help="prepare a scan and reconstruct it with the recipe's engines")
    _add_recipe_arguments(p, "engines.0.numiter=50")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("show", help="render a .ptyr result's pictures again and summarise it")
    p.add_argument("result", help=".ptyr result file")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("export", help="write a .ptyr result in other formats (cxi, ptypy, ...)")
    p.add_argument("result", help=".ptyr result file")
    p.add_argument(
        "--format",
        action="append",
        required=True,
        metavar="NAME",
        help=f"result format, repeatable: {', '.join(RESULT_FORMATS.names())}",
    )
    p.add_argument("-o", "--output", help="output file (one --format only; default: next to it)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("info", help="summarise a .ptyd file (meta, chunks, frames)")
    p.add_argument("file", help=".ptyd file")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("scans", help="list the registered scan classes")
    p.set_defaults(func=_cmd_scans)

    p = sub.add_parser("schema", help="show the parameters of a scan class, an engine or 'run'")
    p.add_argument("name", help="scan class name (see `ptyscan scans`), engine name, or 'run'")
    p.set_defaults(func=_cmd_schema)
    return parser


def _setup_logging(args, rank):
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    if rank != 0 and not args.debug:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


def main(argv=None) -> int:
    """Entry point of the ``ptyscan`` console script; returns the exit code."""
    from ..parallel import abort_on_error, get_comm

    args = build_parser().parse_args(argv)
    comm = get_comm()
    _setup_logging(args, comm.rank)
    with abort_on_error(comm):
        try:
            return args.func(args, comm)
        except BrokenPipeError:  # output piped into a reader that stopped (e.g. `| head`)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except RunInterruptedError as exc:  # Ctrl-C / SIGTERM: results written, one line, 130
            if comm.rank == 0:
                sys.stderr.write(f"{exc}\n")
            return exc.exit_code
        except PtyScanError as exc:
            if args.debug:
                raise
            return _report(exc, comm)
        except OSError as exc:
            if args.debug or exc.errno not in _DISK_FULL:
                raise
            return _report(PtyScanError(f"disk full or file size limit: {exc}"), comm)


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
"""Errors of a write that did not fit (checked before writing; this is the fallback)."""


def _report(exc, comm) -> int:
    """Print a user error once (exit code 2) and end the job, also under MPI.

    A recipe error is raised alike on every rank (all read the same recipe): rank 0
    prints it and every rank returns 2. Any other error may have left ranks waiting
    in a collective, so the job is aborted with code 2; ranks that only failed
    because another one did (:class:`~ptyscan.errors.PeerError`) print nothing.
    """
    if comm.size == 1 or (isinstance(exc, RecipeError) and comm.rank == 0):
        sys.stderr.write(f"error: {exc}\n")
    if comm.size == 1 or isinstance(exc, RecipeError):
        return 2
    from ..parallel import abort_job

    message = "" if isinstance(exc, PeerError) else f"error: [rank {comm.rank}/{comm.size}] {exc}"
    abort_job(comm, message, code=2, grace_s=0.5 if message else 2.0)
    return 2


if __name__ == "__main__":
    sys.exit(main())
