"""Tiling a GEMM onto an accelerator: tile sizes, loop order, dataflow, tile steps.

A GEMM is ``batch`` independent products ``[M, K] x [K, N] -> [M, N]``
(activations x weights). The mapper picks tile sizes ``(tm, tn, tk)`` that fit
one slot of each buffer, a loop order, and a dataflow, by estimating the time
of each candidate the way the tiles will run it (:mod:`.tiling`, :mod:`.estimate`);
it then cuts the GEMM into tile steps and hands each compute tile a contiguous share of the
output blocks (:mod:`.layout`). Pure functions only. The data types live in
:mod:`mixpe_sys.hw.plan` and :mod:`mixpe_sys.workload.gemm_spec` and are re-exported here.
"""

from __future__ import annotations

from ..hw.config import AcceleratorConfig
from ..hw.plan import GemmPlan, GemmTiling, LoopOrder, TileStep  # noqa: F401  (re-exported)
from ..hw.tile_step import pe_rate
from ..workload.gemm_spec import GemmSpec
from .layout import lay_out
from .tiling import choose_tiling

__all__ = ["GemmPlan", "GemmSpec", "GemmTiling", "LoopOrder", "TileStep", "choose_tiling", "plan_gemm",
           "peak_macs_per_s"]


def plan_gemm(spec: GemmSpec, accel: AcceleratorConfig, tiling: GemmTiling | None = None) -> GemmPlan:
    """Map ``spec`` onto ``accel``: the mapper's tiling (or ``tiling``) and each compute tile's steps
    (:func:`~mixpe_sys.mapping.layout.lay_out`).

    Raises
    ------
    MappingError
        If no tile fits the buffers, or the PE cannot multiply these operands.
    """
    if tiling is None:
        tiling = choose_tiling(spec, accel)
    else:
        pe_rate(spec, accel)  # MappingError if the PE cannot multiply these operands
    return lay_out(spec, accel, tiling)


def peak_macs_per_s(spec: GemmSpec, accel: AcceleratorConfig) -> float:
    """Peak MAC rate of the whole design for this GEMM's operand widths (MACs/s)."""
    return accel.num_pes * float(pe_rate(spec, accel)) * accel.frequency_hz
