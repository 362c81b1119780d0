"""The dequantization unit's timing rules: post-GEMM group scaling (MixPE) and in-loop conversion (baselines).

Both are pipelines of ``latency_cycles`` depth taking ``elements_per_cycle``
elements per cycle (the unit's :class:`~mixpe_sys.hw.config.DequantConfig`).
"""

from __future__ import annotations

from math import ceil
from typing import NamedTuple

from .config import DequantConfig


def post_gemm_cycles(elements: int, config: DequantConfig) -> int:
    """Cycles to scale ``elements`` partial sums after the GEMM: ``ceil(elements / rate) + depth`` (0 if none)."""
    if elements <= 0:
        return 0
    return ceil(elements / config.elements_per_cycle) + config.latency_cycles


def post_gemm_elements(m: int, n: int, k: int, group_size: int, activations_new: bool) -> int:
    """Elements the post-GEMM unit handles for an ``[m, k] x [k, n]`` step.

    ``y = s_g (sum_i q_i x_i) - s_g z_g (sum_i x_i)``: one scaled partial sum per
    output and group, plus (when the activation tile is newly loaded) one
    activation sum per row and group, shared by every output column.
    """
    groups = ceil(k / group_size)
    return m * n * groups + (m * groups if activations_new else 0)


class InLoop(NamedTuple):
    """An in-loop converter in front of the array, for one tile step."""

    compute_cycles: int  # the array's busy cycles with the converter in front
    busy_cycles: int  # converter cycles (its pipeline depth included)
    stall_cycles: int  # cycles the array waited on the converter


def in_loop(weights: int, array_cycles: int, config: DequantConfig) -> InLoop:
    """Convert ``weights`` weights (each time one enters the array) in front of an array busy ``array_cycles``.

    The converter streams at ``elements_per_cycle`` and is pipelined with the
    array, so the step takes the longer of the two plus the converter's depth.
    """
    busy = ceil(weights / config.elements_per_cycle)
    compute = max(array_cycles, busy) + config.latency_cycles
    return InLoop(compute, busy + config.latency_cycles, compute - array_cycles)
