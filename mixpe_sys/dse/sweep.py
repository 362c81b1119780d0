"""Sweep files: a base design, a grid (or list) of design parameters, workloads.

A sweep YAML names a ``base`` design and the design points to run on it, as
dotted paths into the design (``tile.pe_array.rows``, ``num_tiles``,
``quant.group_size``, ``dram.bandwidth_bytes_per_s`` ...) plus two special
parameters: ``design`` (a whole design preset or YAML file replacing the
base) and ``dram.preset`` (a DRAM preset replacing the design's DRAM)::

    name: example
    base: mixpe-w4a8
    grid:                       # cartesian product; or a list of such mappings
      design: [mixpe-w4a8, int8]
      tile.pe_array.rows: [32, 64]
    points:                     # explicit points, added to the grid's
      - {design: mixpe-w4a8, dram.preset: lpddr5-6400}
    workloads:
      - {model: opt-6.7b, workload: paper, batch: 64}

Every design point runs every workload; a (design point, workload) pair is a
:class:`SweepPoint` whose id is a hash of its *content*: the resolved design
(every field but its name and description), the resolved model, the request
trace's bytes, the serving options and the SNR matrix. Editing a design
file, a model config or a trace therefore reruns exactly the points it
changes, and renaming or moving a file reruns nothing. On loading, the file's
structure (fields, parameter paths), every point's design (values, presets,
the precision rule) and every workload's model and trace are checked, with
``FILE:LINE: field '...'`` errors; a sweep needs a grid or points
(``points: [{}]`` is the base design alone). Only what can fail while a point
runs (a tile that fits no buffer) gives an error row.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config_base import ConfigBase, LineMap, coerce, file_keys, param, read_config_data
from ..errors import ConfigError, MixpeError
from ..hw.config import AcceleratorConfig
from ..numerics.snr import SnrTarget
from ..sim.model import WorkloadKind
from .resolve import DESIGN_PARAM, DRAM_PRESET_PARAM, build_design, resolve_ref as _resolve_ref, workload_content



@dataclass(frozen=True, kw_only=True)
class SnrConfig(ConfigBase):
    """The fixed, seeded weight matrix whose quantization SNR is each point's fidelity figure."""

    k: int = param(1024, help="reduction length of the weight matrix (rounded up to a multiple of the group "
                   "size)", unit="elements", ge=1)
    n: int = param(256, help="output columns of the weight matrix", unit="elements", ge=1)
    tokens: int = param(64, help="rows of generated activations", unit="tokens", ge=1)
    seed: int = param(0, help="seed of numpy.random.default_rng for weights and activations", ge=0)
    target: SnrTarget = param(SnrTarget.OUTPUT, help="output (SNR of x @ w) or weights (SNR of w)")


@dataclass(frozen=True, kw_only=True)
class WorkloadConfig(ConfigBase):
    """What each design point runs: a model (full or the paper's workload) or a request trace."""

    model: str = param("llama-2-7b", help="model name (see `mixpe-sim models`) or a config.json path")
    workload: WorkloadKind = param(WorkloadKind.FULL, help="full (prefill + decode) or paper (the MixPE "
                                   "authors' linear layers, one token per sequence)")
    batch: int = param(1, help="sequences processed together (model runs)", unit="sequences", ge=1)
    prompt: int = param(512, help="prompt tokens per sequence (full workload)", unit="tokens", ge=1)
    generate: int = param(128, help="generated tokens per sequence (full workload)", unit="tokens", ge=1)
    requests: str | None = param(None, help="request trace file (Azure CSV, CSV or JSONL, relative to the sweep "
                                 "file): replay it with mixpe_sys.serving instead of a model run")
    limit: int | None = param(None, help="replay only the first N requests of the trace", ge=1)
    rate_scale: float = param(1.0, help="arrival-rate multiplier of the request trace", gt=0)
    serving: dict[str, Any] = param(default_factory=dict, help="serving options (ServingConfig fields: "
                                    "batching, max_batch, max_batched_tokens, cost_model ...)")

    @property
    def kind(self) -> str:
        """``full``, ``paper`` or ``serving``."""
        return "serving" if self.requests is not None else self.workload.value

    def key(self) -> dict[str, Any]:
        """The fields that matter for this kind of workload (for point ids and result columns)."""
        if self.requests is not None:
            return {"model": self.model, "workload": "serving", "requests": self.requests, "limit": self.limit,
                    "rate_scale": self.rate_scale, "serving": dict(sorted(self.serving.items()))}
        if self.workload is WorkloadKind.PAPER:
            return {"model": self.model, "workload": "paper", "batch": self.batch}
        return {"model": self.model, "workload": "full", "batch": self.batch, "prompt": self.prompt,
                "generate": self.generate}

    @classmethod
    def _from_mapping(cls, data: Mapping[str, Any], path: tuple, lm: LineMap):
        cfg = super()._from_mapping(data, path, lm)
        if cfg.requests is None:
            for name in ("limit", "serving"):
                if name in data and data[name]:
                    raise lm.error(path + (name,), "only for request-trace workloads (give 'requests')")
        else:
            if "workload" in data:
                raise lm.error(path + ("workload",), "a request-trace workload is always served; drop 'workload'")
            try:
                from ..serving import ServingConfig
            except ImportError:
                raise lm.error(path + ("requests",), "request traces need mixpe_sys.serving, "
                                                     "which is not installed") from None
            ServingConfig.from_nested(cfg.serving, path + ("serving",), lm)
        return cfg


_GRID_TYPE = dict[str, tuple[Any, ...]]


@dataclass(frozen=True, kw_only=True)
class SweepConfig(ConfigBase):
    """A design-space sweep: base design, grid and/or explicit points, workloads."""

    name: str = param("sweep", help="sweep name")
    description: str = param("", help="what the sweep explores")
    base: str = param(help="design preset name or design YAML file (relative to the sweep file) every point "
                      "starts from")
    grid: tuple[_GRID_TYPE, ...] = param((), help="parameter path -> list of values; every combination is a "
                                         "point (a list of such mappings: the union of their products)")
    points: tuple[dict[str, Any], ...] = param((), help="explicit points, each a mapping parameter path -> value")
    workloads: tuple[WorkloadConfig, ...] = param(help="what every design point runs")
    snr: SnrConfig = param(default_factory=SnrConfig, help="the weight matrix of the quantization SNR figure")

    @classmethod
    def _from_mapping(cls, data: Mapping[str, Any], path: tuple, lm: LineMap):
        grid = data.get("grid")
        blocks_paths: list[tuple] = []
        if isinstance(grid, Mapping):  # one product: same as a list of one
            one = coerce(_GRID_TYPE, grid, path + ("grid",), lm)
            data = {**data, "grid": (one,)}
            blocks_paths = [path + ("grid",)]
        elif isinstance(grid, (list, tuple)):
            blocks_paths = [path + ("grid", i) for i in range(len(grid))]
        cfg = super()._from_mapping(data, path, lm)
        if not cfg.workloads:
            raise lm.error(path + ("workloads",), "give at least one workload")
        for block, where in zip(cfg.grid, blocks_paths):
            if not block:
                raise lm.error(where, "an empty grid; give parameter path -> list of values")
            for key, values in block.items():
                _check_param(key, where + (key,), lm)
                if not values:
                    raise lm.error(where + (key,), "give at least one value")
        for i, point in enumerate(cfg.points):
            for key in point:
                _check_param(key, path + ("points", i, key), lm)
        return cfg


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> X."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _check_param(key: str, where: tuple, lm: LineMap) -> None:
    """A parameter path must name a design field (or be ``design`` / ``dram.preset``)."""
    if not isinstance(key, str) or not key:
        raise lm.error(where, "a parameter path must be a non-empty string")
    if key in (DESIGN_PARAM, DRAM_PRESET_PARAM):
        return
    cls: Any = AcceleratorConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not (isinstance(cls, type) and issubclass(cls, ConfigBase)):
            done = ".".join(parts[:i])
            raise lm.error(where, f"unknown parameter path: '{done}' has no fields")
        keys = file_keys(cls)
        if part not in keys or part == "name":
            raise lm.error(where, f"unknown parameter path: {cls.__name__} has no field '{part}' "
                                  f"(known: {', '.join(sorted(set(keys) - {'name'}))})")
        cls = _unwrap(typing.get_type_hints(cls)[keys[part].name])


def load_sweep(path: str | Path) -> SweepConfig:
    """Load and check a sweep YAML/JSON file: its structure, every point's design and every workload.

    Raises
    ------
    ConfigError
        Malformed file, unknown field or parameter path, a design point or workload that does not
        build, or neither grid nor points (``FILE:LINE: field 'NAME': ...``).
    """
    data, lines = read_config_data(path)
    sweep = SweepConfig.from_dict(data, source=str(path), lines=lines)
    lm = LineMap(str(path), lines)
    if not sweep.grid and not sweep.points:
        raise lm.error(("grid",), "give a grid or points (points: [{}] runs the base design alone)")
    expand_points(sweep, Path(path).resolve().parent, lines=lm)
    return sweep


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def point_id(design: Any, workload: Mapping[str, Any], snr: SnrConfig | None = None) -> str:
    """Stable 12-hex-digit id of a point: a SHA-1 of its content.

    Parameters
    ----------
    design:
        The resolved design (an AcceleratorConfig; its name and description do not count).
    workload:
        The resolved workload (:func:`workload_content`).
    snr:
        The SNR matrix of the fidelity figure.
    """
    d = design.to_dict() if hasattr(design, "to_dict") else dict(design)
    d = {k: v for k, v in d.items() if k not in ("name", "description")}
    key = {"design": _canonical(d), "workload": _canonical(workload),
           "snr": _canonical(snr.to_dict()) if snr is not None else None}
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class SweepPoint:
    """One task of a sweep: a design (base + parameters) and a workload; picklable for Dask workers."""

    point_id: str
    base: str
    params: tuple[tuple[str, Any], ...]  # (path, value) in the order written
    workload: WorkloadConfig
    snr: SnrConfig
    base_dir: str  # relative design and trace paths are resolved against it

    @property
    def label(self) -> str:
        """Readable name: the design and its parameters."""
        return _label(self.base, self.params)

    def resolve(self, name: str) -> str:
        """A design or trace reference: a path relative to the sweep file when it names a file there."""
        return _resolve_ref(name, self.base_dir)


def param_paths(sweep: SweepConfig) -> list[str]:
    """Every parameter path of the sweep, in order of first appearance."""
    seen: dict[str, None] = {}
    for block in sweep.grid:
        seen.update(dict.fromkeys(block))
    for point in sweep.points:
        seen.update(dict.fromkeys(point))
    return list(seen)


def _labelled_points(sweep: SweepConfig) -> list[tuple[dict[str, Any], tuple]]:
    """Each design parameter set with the key path it was written at (``grid.0`` or ``points.3``)."""
    out: list[tuple[dict[str, Any], tuple]] = []
    for b, block in enumerate(sweep.grid):
        keys = list(block)
        for combo in itertools.product(*(block[k] for k in keys)):
            out.append((dict(zip(keys, combo)), ("grid", b)))
    out.extend((dict(p), ("points", i)) for i, p in enumerate(sweep.points))
    if not out:
        out.append(({}, ()))  # the base design alone (a SweepConfig built in Python)
    return out


def design_points(sweep: SweepConfig) -> list[dict[str, Any]]:
    """The design parameter sets: each grid block's product, then the explicit points (duplicates kept)."""
    return [params for params, _ in _labelled_points(sweep)]


def _label(base: str, params: Mapping[str, Any]) -> str:
    params = dict(params)
    name = str(params.pop(DESIGN_PARAM, base))
    return name if not params else f"{name}[{','.join(f'{k}={v}' for k, v in params.items())}]"


def _where(lm: LineMap, origin: tuple, params: Mapping[str, Any], message: str, single_grid: bool) -> tuple:
    """The key path of the parameter an error message names (else of the point)."""
    if origin[:1] == ("grid",) and single_grid:
        origin = ("grid",)
    for key, value in params.items():
        if f"'{key}" in message or f"'{key.split('.')[-1]}'" in message or f"'{value}'" in message:
            path = origin + (key,)
            return path if lm.line(path) is not None else origin
    return origin


def expand_points(sweep: SweepConfig, base_dir: str | Path = ".", *, lines: LineMap | None = None
                  ) -> list[SweepPoint]:
    """Every (design point, workload) of the sweep, duplicates (same id) dropped, in a stable order.

    Every point's design and every workload is resolved to compute the ids, so a bad one raises here.

    Raises
    ------
    ConfigError
        A design point or a workload that does not build (naming the sweep file's line when ``lines`` is given).
    """
    lm = lines or LineMap()
    single = len(sweep.grid) == 1 and lm.lines.get(("grid", 0)) is None
    workloads = []
    for i, wl in enumerate(sweep.workloads):
        try:
            workloads.append((wl, workload_content(wl, base_dir)))
        except MixpeError as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            field = "requests" if "trace" in reason else "model"
            raise lm.error(("workloads", i, field), reason) from None
    out: dict[str, SweepPoint] = {}
    for params, origin in _labelled_points(sweep):
        label = _label(sweep.base, params)
        try:
            design = build_design(sweep.base, params, base_dir, label)
        except MixpeError as exc:
            reason = " ".join(str(getattr(exc, "reason", None) or exc).split())
            where = _where(lm, origin, params, reason, single) if origin else ("base",)
            raise ConfigError(f"field '{'.'.join(str(p) for p in where)}': point {label}: {reason}", lm.source,
                              lm.line(where)) from None
        for wl, content in workloads:
            pid = point_id(design, content, sweep.snr)
            if pid not in out:
                out[pid] = SweepPoint(point_id=pid, base=sweep.base, params=tuple(params.items()), workload=wl,
                                      snr=sweep.snr, base_dir=str(base_dir))
    return list(out.values())
