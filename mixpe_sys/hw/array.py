"""The PE array's timing rules: cycles of one fold per dataflow, and the operand reads of a tile.

A *fold* is one pass of the array over an ``R x C`` block of its stationary
operand while the other operand streams through, as cycle-accurate systolic
simulators define it (SCALE-Sim: Samajdar et al., "A systematic methodology
for characterizing scalability of DNN accelerators using SCALE-Sim", ISPASS
2020, Sec. III; the fold formulas below are its per-fold compute cycles):

- output-stationary (OS): each PE owns one output and accumulates over K;
  folds ``ceil(M / R) x ceil(N / C)``, each ``R + C + K - 2`` cycles (K
  streaming cycles plus the skew of the R rows and C columns);
- weight-stationary (WS): each PE holds one weight (R along K, C along N);
  folds ``ceil(K / R) x ceil(N / C)``, each ``2R + C + M - 2`` cycles (R
  cycles to preload the weights, then M activation rows stream through);
- input-stationary (IS): the same construction with the activations
  stationary (R along K, C along M) and the N weight columns streaming; folds
  ``ceil(K / R) x ceil(M / C)``, each ``2R + C + N - 2``;
- weight streaming (GEMV): a wide port replaces the whole weight block every
  pass and the array never stops; ``ceil(K / R) x ceil(N / C)`` folds of
  ``M`` cycles back to back, and one fill and drain (``R + C - 2``) per tile
  step.

A PE that completes several MACs per cycle (``PeModel.macs_per_cycle`` > 1:
MixPE W4A8, BitFusion, the MixPE authors' rule) covers more of the
reduction or of the output per fold, so it divides the fold count (OS: by its
``output_stationary_factors``; WS/IS/streaming: each PE holds ``rate`` K
elements); one that needs several passes (< 1) multiplies the streaming
cycles. The formulas count a one-cycle MAC; a PE whose product is
accumulated ``pipeline_depth_cycles`` after its operands enter adds
``depth - 1`` cycles to each fold's drain. With ``fill_drain`` off (the MixPE
authors' model, and pipelined tensor-core MMAs) a fold costs its streaming
cycles alone.
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil
from typing import NamedTuple

from .config import Dataflow, PeArrayConfig


class ArrayWork(NamedTuple):
    """What the array does for one ``[m, k] x [k, n]`` tile."""

    folds: int  # passes over a stationary block
    cycles: int  # busy cycles, fills and drains included
    a_passes: int  # times the activation tile is read out of its buffer into the array
    w_passes: int  # times the weight tile is read into the array (each an in-loop conversion of every weight)


def per_pe(rate: Fraction) -> tuple[int, int]:
    """(K elements a PE handles per pass, cycles per pass) for ``rate`` MACs per cycle."""
    if rate >= 1:
        return int(rate), 1
    return 1, ceil(1 / rate)


def fold_cycles(dataflow: Dataflow, rows: int, cols: int, stream: int, depth_cycles: int,
                fill_drain: bool = True) -> int:
    """Cycles of one fold whose moving operand streams for ``stream`` cycles.

    OS ``R + C + stream - 2``; WS and IS ``2R + C + stream - 2``; plus
    ``depth_cycles - 1`` for a PE deeper than one cycle. Weight streaming has
    no per-fold skew (see :func:`tile_work`). Without ``fill_drain``: ``stream``.
    """
    if not fill_drain or dataflow is Dataflow.WEIGHT_STREAMING:
        return stream
    extra = max(depth_cycles - 1, 0)
    if dataflow is Dataflow.OUTPUT_STATIONARY:
        return rows + cols + stream - 2 + extra
    return 2 * rows + cols + stream - 2 + extra


def skew_cycles(rows: int, cols: int, depth_cycles: int) -> int:
    """One fill and drain of the array: ``R + C - 2`` plus ``depth - 1``."""
    return rows + cols - 2 + max(depth_cycles - 1, 0)


def tile_work(m: int, n: int, k: int, array: PeArrayConfig, dataflow: Dataflow, rate: Fraction,
              os_factors: tuple[int, int, Fraction] | None = None) -> ArrayWork:
    """Folds, cycles and operand reads of an ``[m, k] x [k, n]`` tile on ``array``.

    Parameters
    ----------
    m, n, k:
        Tile sizes (activation rows, output columns, reduction length).
    array:
        The PE array (rows, cols, PE depth, whether fills and drains are paid).
    dataflow:
        How the tile is laid onto the array.
    rate:
        MACs per PE per cycle for the operand widths.
    os_factors:
        Output-stationary only: ``(row_factor, col_factor, k_factor)`` of the
        PE (``PeModel.output_stationary_factors``); None = ``(1, 1, rate)``.
    """
    if min(m, n, k) <= 0:
        return ArrayWork(0, 0, 0, 0)
    R, C, depth, fd = array.rows, array.cols, array.pe.pipeline_depth_cycles, array.fill_drain
    if dataflow is Dataflow.OUTPUT_STATIONARY:
        rf, cf, kf = os_factors if os_factors is not None else (1, 1, rate)
        row_folds, col_folds = ceil(m / (R * rf)), ceil(n / (C * cf))
        folds = row_folds * col_folds
        cycles = folds * fold_cycles(dataflow, R, C, ceil(k / kf), depth, fd)
        # every fold streams its activation rows and weight columns over the full K
        return ArrayWork(folds, cycles, col_folds, row_folds)
    kpp, cpp = per_pe(rate)
    k_folds = ceil(k / (R * kpp))
    if dataflow is Dataflow.INPUT_STATIONARY:
        m_folds = ceil(m / C)
        folds = k_folds * m_folds
        cycles = folds * fold_cycles(dataflow, R, C, n * cpp, depth, fd)
        return ArrayWork(folds, cycles, 1, m_folds)
    folds = k_folds * ceil(n / C)
    cycles = folds * fold_cycles(dataflow, R, C, m * cpp, depth, fd)
    if dataflow is Dataflow.WEIGHT_STREAMING and fd:
        cycles += skew_cycles(R, C, depth)
    return ArrayWork(folds, cycles, ceil(n / C), 1)
