"""Cycle counts of one GEMM tile on a PE array, per dataflow.

Pure functions of the tile shape, the array size and the PE's MACs per cycle;
the tile step's other limits (SRAM bandwidth, dequant) are applied by
:mod:`mixpe_sys.mapping.gemm`.
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil

from ..hw.config import Dataflow


def fill_drain_cycles(rows: int, cols: int, pipeline_depth_cycles: int) -> int:
    """Cycles to fill and drain a systolic array once (skew of rows + cols, plus PE depth)."""
    return rows + cols - 2 + pipeline_depth_cycles


def _per_pe(rate: Fraction) -> tuple[int, int]:
    """(K elements a PE handles per pass, cycles per pass) for ``rate`` MACs/cycle."""
    if rate >= 1:
        return int(rate), 1
    return 1, ceil(1 / rate)


def array_cycles(m: int, n: int, k: int, rows: int, cols: int, rate: Fraction,
                 pipeline_depth_cycles: int, dataflow: Dataflow, *,
                 factors: tuple[int, int, Fraction] | None = None, fill_drain: bool = True) -> int:
    """Cycles for an ``[m, k] x [k, n]`` tile on a ``rows x cols`` array.

    Parameters
    ----------
    m, n, k:
        Tile sizes (activation rows, output columns, reduction length).
    rows, cols:
        PE array size.
    rate:
        MACs per PE per cycle for the operand widths (``PeModel.macs_per_cycle``).
    pipeline_depth_cycles:
        PE pipeline depth, paid once per tile with the array fill/drain.
    dataflow:
        Output-stationary: each PE owns an output and accumulates over K
        (``ceil(m/R) * ceil(n/C)`` blocks of ``ceil(k/rate)`` cycles).
        Weight-stationary: each PE holds ``kpp`` weights (R along K, C along N),
        reloaded in R cycles per block behind the activation stream
        (``max(m * cpp, R)`` cycles per block). Weight-streaming: the weight
        block is replaced every pass over a wide port (``m * cpp`` cycles per
        block), so a GEMV (m = 1) keeps every PE busy.
    factors:
        Output-stationary only: ``(row_factor, col_factor, k_factor)`` from
        ``PeModel.output_stationary_factors``; one PE covers ``row_factor`` rows
        and ``col_factor`` columns and ``k_factor`` K steps per cycle. None =
        ``(1, 1, rate)``.
    fill_drain:
        Add one array fill and drain (False: the MixPE authors' model, which has none).

    Returns
    -------
    int
        Cycles, including one fill and drain when ``fill_drain``.
    """
    if min(m, n, k) <= 0:
        return 0
    fill = fill_drain_cycles(rows, cols, pipeline_depth_cycles) if fill_drain else 0
    if dataflow is Dataflow.OUTPUT_STATIONARY:
        rf, cf, kf = factors if factors is not None else (1, 1, rate)
        blocks = ceil(m / (rows * rf)) * ceil(n / (cols * cf))
        return blocks * ceil(k / kf) + fill
    kpp, cpp = _per_pe(rate)
    blocks = ceil(k / (rows * kpp)) * ceil(n / cols)
    if dataflow is Dataflow.WEIGHT_STATIONARY:
        return blocks * max(m * cpp, rows) + fill
    return blocks * m * cpp + fill
