"""Evaluate one sweep point: build its design, run its workload, collect one flat row of figures.

:func:`evaluate_point` never raises for a bad point: a design that does not
validate, a tile that fits no buffer or a failing run gives a row with
``status = "error"`` and a one-line ``error`` message. It runs on Dask
workers, so it only needs the point (picklable) and the installed package.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping

import numpy as np

from ..hw.config import AcceleratorConfig, DequantPlacement, PeKind
from ..hw.pe import pe_model
from ..hw.precision import run_quant
from ..workload.quant import QuantScheme
from .sweep import DESIGN_PARAM, SnrConfig, SweepPoint, build_design

STATUS_OK = "ok"
STATUS_ERROR = "error"

#: Columns describing the point, before its parameter columns.
POINT_COLUMNS = ["point_id", "status", "label", "design", "base"]
#: Workload columns (blank where a field does not apply to the workload kind).
WORKLOAD_COLUMNS = ["model", "workload", "batch", "prompt", "generate", "requests", "limit", "rate_scale", "serving"]
#: The resolved design's figures.
DESIGN_COLUMNS = ["family", "pe_kind", "quant", "group_size", "dequant", "array", "num_tiles", "num_pes",
                  "frequency_hz", "dram", "dram_bandwidth_bytes_per_s", "peak_tmac_per_s"]
#: Results (times in s, energy in J, area in mm^2, SNR in dB).
FIGURE_COLUMNS = ["total_time_s", "prefill_time_s", "decode_time_s", "tokens_per_s", "time_per_output_token_s",
                  "ttft_p50_s", "ttft_p99_s", "tpot_p99_s", "memory_bound_share_decode", "dram_read_bytes", "macs",
                  "energy_j", "energy_per_token_j", "area_mm2", "tokens_per_s_per_mm2", "snr_db"]
ERROR_COLUMNS = ["error"]


def result_columns(param_paths: list[str]) -> list[str]:
    """Column order of ``results.csv`` for a sweep with these parameter paths."""
    fixed = set(POINT_COLUMNS + WORKLOAD_COLUMNS + DESIGN_COLUMNS + FIGURE_COLUMNS + ERROR_COLUMNS)
    params = [p for p in param_paths if p not in fixed]
    return POINT_COLUMNS + params + WORKLOAD_COLUMNS + DESIGN_COLUMNS + FIGURE_COLUMNS + ERROR_COLUMNS


def design_for_point(point: SweepPoint) -> AcceleratorConfig:
    """The point's design: its ``design`` (or the sweep's base) with its parameters set.

    Raises
    ------
    ConfigError
        Unknown design or DRAM preset, or a bad parameter value.
    """
    return build_design(point.base, point.params, point.base_dir, point.label)


def design_columns(design: AcceleratorConfig, quant: QuantScheme) -> dict[str, Any]:
    """Figures describing a resolved design running ``quant`` (peak rate in TMAC/s)."""
    q = quant
    pe = design.tile.pe_array.pe
    arr = design.tile.pe_array
    model = pe_model(pe)
    rate = model.macs_per_cycle(q.weight_bits, q.activation_bits, q.activation_format)
    mixpe = model.mixed_precision or (pe.kind == PeKind.PAPER_RULE
                                      and design.tile.dequant.placement is DequantPlacement.POST_GEMM)
    return {"family": "MixPE" if mixpe else "baseline", "pe_kind": pe.kind, "quant": q.name,
            "group_size": q.group_size, "dequant": design.tile.dequant.placement.value,
            "array": f"{arr.rows}x{arr.cols}", "num_tiles": design.num_tiles, "num_pes": design.num_pes,
            "frequency_hz": design.frequency_hz, "dram": design.dram.kind,
            "dram_bandwidth_bytes_per_s": design.dram.bandwidth_bytes_per_s,
            "peak_tmac_per_s": design.num_pes * float(rate) * design.frequency_hz / 1e12}


@functools.lru_cache(maxsize=256)
def _snr_cached(weight_bits: int, activation_bits: int, activation_format: str, group_size: int,
                snr: SnrConfig) -> float:
    from ..numerics import quantization_snr_db

    k = snr.k if group_size <= 0 else -(-snr.k // group_size) * group_size  # K a multiple of the group
    rng = np.random.default_rng(snr.seed)
    w = rng.standard_normal((k, snr.n))  # [K, N]
    scheme = QuantScheme(weight_bits=weight_bits, activation_bits=activation_bits,
                         activation_format=activation_format, group_size=group_size)
    return quantization_snr_db(w, scheme, num_tokens=snr.tokens, seed=snr.seed + 1, target=snr.target)


def quant_snr_db(quant: QuantScheme, snr: SnrConfig) -> float:
    """Quantization SNR (dB) of ``quant`` on the sweep's fixed seeded weight matrix (cached per process)."""
    return _snr_cached(quant.weight_bits, quant.activation_bits, quant.activation_format.value, quant.group_size,
                       snr)


def area_of(design: AcceleratorConfig) -> float | None:
    """Silicon area (mm^2) from :mod:`mixpe_sys.area`, or None if that module is absent."""
    try:
        from ..area import area_mm2
    except ImportError:
        return None
    return float(area_mm2(design))


def _model_figures(point: SweepPoint, design: AcceleratorConfig, quant: QuantScheme, cache_dir=None,
                   fast_forward: bool = True) -> dict[str, Any]:
    from ..sim.model import simulate_model
    from ..workload.models import load_model

    wl = point.workload
    result = simulate_model(load_model(point.resolve(wl.model)), design, batch=wl.batch, prompt=wl.prompt,
                            generate=wl.generate, workload=wl.workload, progress=False, quant=quant,
                            cache_dir=cache_dir, fast_forward=fast_forward)
    d = result.to_dict()
    out = {k: d.get(k) for k in ("total_time_s", "prefill_time_s", "decode_time_s", "tokens_per_s",
                                 "time_per_output_token_s", "memory_bound_share_decode", "dram_read_bytes", "macs")}
    energy = d.get("energy_j")
    if energy is not None:
        out["energy_j"] = energy
        tokens = (d["tokens_per_s"] or 0.0) * (d["total_time_s"] or 0.0)
        out["energy_per_token_j"] = energy / tokens if tokens else None
    return out


def _serving_figures(point: SweepPoint, design: AcceleratorConfig, quant: QuantScheme,
                     cache_dir=None, fast_forward: bool = True) -> dict[str, Any]:
    from ..serving import ServingConfig, replay
    from ..workload.models import load_model
    from ..workload.requests import load_request_trace

    wl = point.workload
    requests = load_request_trace(point.resolve(wl.requests), limit=wl.limit, rate_scale=wl.rate_scale)
    result = replay(requests, load_model(point.resolve(wl.model)), design, config=ServingConfig.from_dict(wl.serving),
                    quant=quant, progress=False, cache_dir=cache_dir, fast_forward=fast_forward)
    s = result.summary
    return {"total_time_s": s.get("duration_s"), "tokens_per_s": s.get("throughput_tokens_per_s"),
            "time_per_output_token_s": s.get("tpot_p50_s"), "ttft_p50_s": s.get("ttft_p50_s"),
            "ttft_p99_s": s.get("ttft_p99_s"), "tpot_p99_s": s.get("tpot_p99_s"),
            "energy_j": s.get("energy_j"), "energy_per_token_j": s.get("energy_per_token_j")}


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception as one line: user errors as their message, others prefixed with their type."""
    from ..errors import MixpeError

    text = " ".join(str(exc).split()) or "(no message)"
    if not isinstance(exc, MixpeError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _point_fields(point: SweepPoint) -> dict[str, Any]:
    params = dict(point.params)
    row: dict[str, Any] = {"point_id": point.point_id, "label": point.label, "base": point.base}
    row.update(params)
    row["design"] = params.get(DESIGN_PARAM, point.base)  # the design preset (or file) the point starts from
    wl = point.workload.key()
    row.update({k: v for k, v in wl.items() if k != "serving"})
    if point.workload.requests is not None:
        row["serving"] = ";".join(f"{k}={v}" for k, v in wl["serving"].items())
    return row


def evaluate_point(point: SweepPoint, cache_dir=None, fast_forward: bool = True) -> dict[str, Any]:
    """Run one sweep point; returns one result row (``status`` ``ok`` or ``error``), never raises.

    ``cache_dir`` is the persistent op-cost store (None the default directory, a path, False none);
    ``fast_forward`` the GEMMs' steady-state skip (same results).

    Returns
    -------
    dict
        The point's id, label, parameters and workload, the design's figures,
        and ``total_time_s`` (s), ``tokens_per_s``, ``time_per_output_token_s``
        (s), ``energy_j`` / ``energy_per_token_j`` (J), ``area_mm2``,
        ``tokens_per_s_per_mm2`` and ``snr_db`` (dB).
    """
    row = _point_fields(point)
    try:
        design = design_for_point(point)
        quant = run_quant(design)  # a point runs its design's own scheme (a sweep sets it as quant.*)
        row.update(design_columns(design, quant))
        row["snr_db"] = quant_snr_db(quant, point.snr)
        row["area_mm2"] = area_of(design)
        figures = _serving_figures(point, design, quant, cache_dir, fast_forward) \
            if point.workload.requests is not None else _model_figures(point, design, quant, cache_dir, fast_forward)
        row.update(figures)
        tps, area = _finite(row.get("tokens_per_s")), _finite(row.get("area_mm2"))
        row["tokens_per_s_per_mm2"] = tps / area if tps is not None and area else None
        row["status"] = STATUS_OK
    except Exception as exc:  # noqa: BLE001 - a failing point is a result, not the end of the sweep
        row["status"] = STATUS_ERROR
        row["error"] = one_line(exc)
    return row


def error_row(point: SweepPoint, message: str) -> dict[str, Any]:
    """The row of a point whose task failed outside :func:`evaluate_point` (e.g. its worker died)."""
    row = _point_fields(point)
    row["status"] = STATUS_ERROR
    row["error"] = " ".join(message.split())
    return row
