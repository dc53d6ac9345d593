"""YAML recipes: reading, ``--set`` overrides, validation of every section at once.

A recipe has up to three sections::

    scan:    {name: MoonFlowerScan, num_frames: 200, shape: 128}
    engines: [{name: DM, numiter: 100}]
    run:     {output_dir: out, frames_per_chunk: 50}

Merge order: class defaults < recipe < overrides (``--set scan.shape=128``).
Everything is validated before any work; all problems are reported together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import yaml
from pydantic import Field, field_validator

from .errors import PtyScanError, RecipeError
from .params import ParamsModel, PositiveFloat, closest_name, plain, validate_params
from .registry import ENGINES, RESULT_FORMATS, SCANS

__all__ = [
    "SECTIONS",
    "Recipe",
    "RunParams",
    "apply_overrides",
    "load_recipe",
    "parse_override",
    "validate_engine",
]

SECTIONS = ("scan", "engines", "run")


class RunParams(ParamsModel):
    """The ``run:`` section: how the job runs, not what it computes."""

    backend: Literal["auto", "numpy", "cupy"] = "auto"
    """Array backend of the engines: 'numpy', 'cupy' (GPU) or 'auto' (CuPy if a GPU works)."""
    output_dir: str = "out"
    """Folder for results and, when scan.dfile is not set, the prepared .ptyd file."""
    frames_per_chunk: int = Field(100, ge=1)
    """Frames requested from the scan per chunk (``scan.auto(frames_per_chunk)``)."""
    poll_interval: PositiveFloat = 0.2
    """Seconds to wait after WAIT (scan still acquiring) before asking again."""
    progress: bool = True
    """Show a progress bar on rank 0."""
    min_frames_for_recon: int = Field(1, ge=1)
    """Frames that must have arrived before the first engine starts iterating (streaming)."""
    numiter_contiguous: int = Field(1, ge=1)
    """Iterations the first engine runs between two polls of the scan while frames stream in."""
    checkpoint_every: int = Field(50, ge=0)
    """Write a checkpoint .ptyr every this many iterations after the last frame (0: never;
    a stopped run writes one anyway); see ``ptyscan run --resume``. Removed after success."""
    preview_every: float = Field(0.0, ge=0)
    """Seconds between previews while reconstructing (0: none): the result so far is
    written to the .ptyr (status 'preview', atomically) with its PNG pictures, so the sample
    can be looked at while it is still being scanned."""
    loader_ranks: int = Field(0, ge=0)
    """Under MPI, ranks that only read and prepare frames and send each one to the engine
    rank that owns it, while the other ranks only reconstruct (0: every rank does both).
    Pays when preparing is slow or the engines run on GPUs. Must be below the number of
    ranks; in a single process it is ignored with a warning."""
    plot: bool = True
    """Save PNG pictures (object, probe, errors) next to the result (needs matplotlib)."""
    result_formats: tuple[str, ...] = ("ptyr",)
    """Formats the result is written in, each a registered result writer
    (entry-point group ``ptyscan.result_formats``; built in: 'ptyr')."""

    @field_validator("result_formats")
    @classmethod
    def _known_formats(cls, value):
        names = RESULT_FORMATS.names()
        for name in value:
            if name not in names:
                near = closest_name(name, names)
                hint = f" (did you mean '{near}'?)" if near else ""
                raise ValueError(
                    f"unknown result format {name!r}{hint}; available: {', '.join(names)}"
                )
        if not value:
            raise ValueError("must name at least one result format, e.g. [ptyr]")
        return value


@dataclass(frozen=True)
class Recipe:
    """A validated, frozen recipe.

    Attributes
    ----------
    scan : PtyScanParams
        Validated parameters of ``scan_class`` (its ``Params`` model).
    scan_class : type
    engines : tuple of EngineParams
        Engine sections, in order.
    engine_classes : tuple of type
        The engine class of each section.
    run : RunParams
    source : str or None
        File the recipe was read from.
    """

    scan: ParamsModel
    scan_class: type
    run: RunParams
    engines: tuple = field(default=())
    engine_classes: tuple = field(default=())
    source: str | None = field(default=None, compare=False)

    @property
    def stem(self) -> str:
        """Name of the outputs: the recipe file's stem, else the scan's label or name."""
        if self.source:
            return os.path.splitext(os.path.basename(self.source))[0]
        return self.scan.label or self.scan.name

    @property
    def dfile(self) -> str:
        """The prepared-data file: ``scan.dfile``, else ``<run.output_dir>/<stem>.ptyd``."""
        return self.scan.dfile or os.path.join(self.run.output_dir, f"{self.stem}.ptyd")

    @property
    def result_path(self) -> str:
        """The result file ``<run.output_dir>/<stem>.ptyr`` (other formats change the suffix)."""
        return os.path.join(self.run.output_dir, f"{self.stem}.ptyr")

    @property
    def checkpoint_path(self) -> str:
        """The checkpoint ``<run.output_dir>/<stem>.checkpoint.ptyr`` (``--resume``)."""
        return os.path.join(self.run.output_dir, f"{self.stem}.checkpoint.ptyr")

    def to_dict(self) -> dict:
        """Fully resolved recipe (defaults filled in) as plain data."""
        return {
            "scan": self.scan.to_dict(),
            "engines": [
                e.to_dict() if isinstance(e, ParamsModel) else plain(e) for e in self.engines
            ],
            "run": self.run.to_dict(),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def make_scan(self, *, comm=None):
        """Construct the scan (loads nothing)."""
        return self.scan_class(self.scan, comm=comm)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given on line {seen[key] + 1})", mark
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
# YAML 1.1 reads 75e-6 and 1.0e8 (no dot or no exponent sign) as strings; read them as floats.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path) -> dict:
    """Read a YAML mapping; syntax errors name the file, line and column."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise RecipeError([f"{path}: cannot read recipe: {exc.strerror}"], source=path) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError([f"{where}: invalid YAML: {problem}"], source=path) from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RecipeError(
            [
                f"{path}: a recipe must be a mapping with sections {SECTIONS}, got {type(data).__name__}"
            ],
            source=path,
        )
    return dict(data)


_KEY = re.compile(r"^[A-Za-z_][\w]*(\[\d+\])?(\.([A-Za-z_][\w]*|\d+)(\[\d+\])?)*$")


def parse_override(text: str) -> tuple[list, object]:
    """Split ``'scan.shape=128'`` into ``(['scan', 'shape'], 128)``.

    The value is read as YAML, so ``128`` is an int, ``[64, 32]`` a list,
    ``null`` None and ``true`` a bool; ``engines.0.numiter`` or
    ``engines[0].numiter`` address list items.
    """
    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise RecipeError(
            [
                f"--set {text!r}: expected KEY.PATH=VALUE such as scan.shape=128 or run.output_dir=out"
            ]
        )
    parts = [int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", key) if p]
    try:
        value = yaml.load(raw, Loader=_UniqueKeyLoader) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """Return a copy of ``data`` with each ``KEY.PATH=VALUE`` override applied."""
    import copy

    data = copy.deepcopy(data)
    problems = []
    for text in overrides:
        try:
            parts, value = parse_override(text)
            _set_path(data, parts, value, text)
        except RecipeError as exc:
            problems += exc.problems
    if problems:
        raise RecipeError(problems)
    return data


def _set_path(data, parts, value, text):
    node = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not isinstance(part, int) or not 0 <= part < len(node):
                raise RecipeError([f"--set {text!r}: no list item {part!r} (have {len(node)})"])
        elif isinstance(node, dict):
            if isinstance(part, int):
                raise RecipeError([f"--set {text!r}: {parts[depth - 1]!r} is not a list"])
            if not last and node.get(part) is None:
                node[part] = {}
        else:
            raise RecipeError([f"--set {text!r}: {parts[depth - 1]!r} holds a value, not keys"])
        if last:
            node[part] = value
        else:
            node = node[part]


def _validate_scan(section, problems, base_dir):
    if section is None:
        problems.append("scan: required section is missing (e.g. scan: {name: MoonFlowerScan})")
        return None, None
    if not isinstance(section, Mapping):
        problems.append(f"scan: must be a mapping with at least 'name', got {section!r:.60}")
        return None, None
    name = section.get("name")
    if name is None:
        problems.append("scan.name: required key is missing (e.g. name: MoonFlowerScan)")
        return None, None
    try:
        cls = SCANS.get(str(name))
        validate = getattr(cls, "validate_recipe", None)  # a scan whose keys come from a file
        if validate is not None:
            return cls, validate(section, prefix="scan", base_dir=base_dir)
        return cls, validate_params(cls.Params, section, prefix="scan", base_dir=base_dir)
    except RecipeError as exc:
        problems += exc.problems
    except PtyScanError as exc:
        problems.append(f"scan.name: {exc}")
    return None, None


def validate_engine(section, *, prefix: str, base_dir=None, defaults=None):
    """Validate one ``engines:`` item (a mapping with ``name``); return (class, params).

    ``base_dir``: the recipe's folder (relative input files are looked for there)."""
    if not isinstance(section, Mapping) or "name" not in section:
        raise RecipeError([f"{prefix}: must be a mapping with a 'name' key, got {section!r:.60}"])
    cls = ENGINES.get(str(section["name"]), key=f"{prefix}.name")
    own = {k: v for k, v in (defaults or {}).items() if k in cls.Params.model_fields}
    section = {**own, **section}  # the scan's defaults (ENGINE_DEFAULTS), the item's keys win
    return cls, validate_params(cls.Params, section, prefix=prefix, base_dir=base_dir)


def _validate_engines(section, problems, base_dir, defaults=None):
    """``(classes, params)`` of the ``engines:`` list; problems are appended. ``defaults``:
    the scan class's ENGINE_DEFAULTS, {engine name: {key: value}} (subpixel for the first
    engine only: the others follow its state)."""
    if section is None:
        return (), ()
    if not isinstance(section, list):
        problems.append(f"engines: must be a list of engine sections, got {section!r:.60}")
        return (), ()
    classes, params = [], []
    for k, item in enumerate(section):
        try:
            name = item.get("name") if isinstance(item, Mapping) else None
            own = (defaults or {}).get(name, {}) if isinstance(name, str) else {}
            own = {key: v for key, v in own.items() if k == 0 or key != "subpixel"}
            cls, p = validate_engine(item, prefix=f"engines[{k}]", base_dir=base_dir, defaults=own)
        except RecipeError as exc:
            problems += exc.problems
        except PtyScanError as exc:
            problems.append(f"engines[{k}].name: {exc}")
        else:
            classes.append(cls)
            params.append(p)
    for k, p in enumerate(params[1:], start=1):  # later engines continue the first's state
        first = getattr(params[0], "subpixel", "none")
        if "subpixel" in p.model_fields_set and p.subpixel != first:
            problems.append(
                f"engines[{k}].subpixel: {p.subpixel!r} differs from engines[0]'s {first!r} "
                "(expected the same: the first engine sets it for the whole reconstruction)"
            )
    return tuple(classes), tuple(params)


def _section_problems(data) -> list[str]:
    problems = []
    for key in data:
        if key not in SECTIONS:
            near = closest_name(key, SECTIONS)
            hint = f"did you mean '{near}'?" if near else f"valid sections: {', '.join(SECTIONS)}"
            problems.append(f"{key}: unknown section ({hint})")
    return problems


def load_recipe(source, overrides: Sequence[str] = ()) -> Recipe:
    """Read, override and validate a recipe.

    Parameters
    ----------
    source : str, os.PathLike or dict
        A YAML file, or the recipe as a dict.
    overrides : sequence of str
        ``KEY.PATH=VALUE`` strings applied after reading (``--set``).

    Raises
    ------
    RecipeError
        Listing every problem, one per line.
    """
    path = None if isinstance(source, Mapping) else os.fspath(source)
    data = dict(source) if path is None else read_yaml(path)
    try:
        data = apply_overrides(data, overrides)
    except RecipeError as exc:
        raise RecipeError(_section_problems(data) + exc.problems, source=path) from None
    problems = _section_problems(data)  # after overrides: --set can add a section too
    base_dir = None if path is None else os.path.dirname(os.path.abspath(path))
    scan_class, scan = _validate_scan(data.get("scan"), problems, base_dir)
    defaults = getattr(scan_class, "ENGINE_DEFAULTS", None)
    engine_classes, engines = _validate_engines(data.get("engines"), problems, base_dir, defaults)
    run = None
    try:
        run = validate_params(RunParams, data.get("run"), prefix="run")
    except RecipeError as exc:
        problems += exc.problems
    if problems:
        raise RecipeError(problems, source=path)
    return Recipe(
        scan=scan,
        scan_class=scan_class,
        run=run,
        engines=engines,
        engine_classes=engine_classes,
        source=path,
    )
