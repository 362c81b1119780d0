"""How a tiling's output blocks fall on the tiles, counted without laying the steps out: each tile's
share of full and edge blocks, how often operands are reloaded, the DRAM bytes (exactly as
:func:`~mixpe_sys.mapping.layout.lay_out` lays the plan out). Geometry only; the estimate
(:mod:`.estimate`) times it."""

from __future__ import annotations

from functools import lru_cache
from math import ceil
from typing import NamedTuple

import numpy as np

from ..hw.plan import LoopOrder
from ..workload.gemm_spec import GemmSpec
from .layout import k_rotation


def dram_traffic(spec: GemmSpec, T: int, order: LoopOrder, tm: int, tn: int, tk: int,
                shared: bool) -> tuple[int, float, float, float]:
    """DRAM bytes of a tiling on ``T`` tiles as :func:`plan_gemm` lays it out, and how often operands are loaded.

    A tile reloads an operand tile whenever its key changes between consecutive steps, so with one
    K step an operand shared by consecutive output blocks stays resident; with a global buffer each
    activation tile is read from DRAM once and delivered from there to every tile that loads it.

    Returns
    -------
    (dram_bytes, activation_delivery_bytes, weight_loads, activation_loads):
        The last two are the loads of a block's full-K operand per output block (1 = every block loads).
    """
    nb_i, nb_j, nk = ceil(spec.m / tm), ceil(spec.n / tn), ceil(spec.k / tk)
    blocks = spec.batch * nb_i * nb_j
    a_total = spec.batch * spec.activation_bytes(spec.m, spec.k)
    w_total = spec.batch * spec.weight_bytes(spec.k, spec.n)
    if nk > 1:  # every step loads a new K slice of both operands: each block its full K
        w_traffic, a_deliveries = w_total * nb_i, a_total * nb_j
        w_loads = a_loads = blocks
    else:
        # operand tiles of a full and of an edge (last) row / column block
        tm, tn = min(tm, spec.m), min(tn, spec.n)
        w_full, w_edge = spec.weight_bytes(spec.k, tn), spec.weight_bytes(spec.k, spec.n - (nb_j - 1) * tn)
        a_full, a_edge = spec.activation_bytes(tm, spec.k), spec.activation_bytes(spec.m - (nb_i - 1) * tm, spec.k)
        # runs of consecutive blocks that keep an operand (the other operand's index changes), and
        # (run length, period, position) of the runs that use the edge tile
        if order is LoopOrder.M_OUTER:  # blocks (b, i, j)
            a_run, a_edge_runs = nb_j, (nb_i, nb_i - 1)
            w_run, w_edge_runs = (nb_i, (1, 0)) if nb_j == 1 else (1, (nb_j, nb_j - 1))
        else:  # blocks (b, j, i)
            w_run, w_edge_runs = nb_i, (nb_j, nb_j - 1)
            a_run, a_edge_runs = (nb_j, (1, 0)) if nb_i == 1 else (1, (nb_i, nb_i - 1))
        # over the busy tiles' shares [lo, hi): the runs each touches, and how many of them use the edge tile
        w_loads = a_loads = w_edges = a_edges = 0
        for lo, hi in _busy_spans(blocks, T):
            w_lo, w_hi, a_lo, a_hi = lo // w_run, -(-hi // w_run), lo // a_run, -(-hi // a_run)
            w_loads += _total(w_hi - w_lo)
            a_loads += _total(a_hi - a_lo)
            w_edges += _total(periodic_count(w_lo, w_hi, w_edge_runs[0], w_edge_runs[1], 1))
            a_edges += _total(periodic_count(a_lo, a_hi, a_edge_runs[0], a_edge_runs[1], 1))
        w_traffic = (w_loads - w_edges) * w_full + w_edges * w_edge
        a_deliveries = (a_loads - a_edges) * a_full + a_edges * a_edge
    traffic = ceil(w_traffic + (a_total if shared else a_deliveries)) + spec.batch * spec.output_bytes(spec.m, spec.n)
    return traffic, a_deliveries, w_loads / blocks, a_loads / blocks


#: up to this many tiles, their shares of the output blocks are counted one by one; beyond, all at
#: once in integer arrays (the same counts)
ONE_BY_ONE_TILES = 8


def _busy_spans(blocks: int, T: int) -> list[tuple]:
    """``(lo, hi)`` of the busy ones of ``T`` tiles: tile ``t`` gets output blocks
    ``[blocks t // T, blocks (t + 1) // T)`` (as :func:`plan_gemm` shares them); one pair of ints per
    busy tile, or for more than ``ONE_BY_ONE_TILES`` tiles one pair of integer arrays for all."""
    if T <= ONE_BY_ONE_TILES:
        spans = [((blocks * t) // T, (blocks * (t + 1)) // T) for t in range(T)]
        return [(lo, hi) for lo, hi in spans if hi > lo]
    bounds = (blocks * np.arange(T + 1, dtype=np.int64)) // T
    lo, hi = bounds[:-1], bounds[1:]
    busy = hi > lo
    return [(lo[busy], hi[busy])]


def _each(x) -> list[int]:
    """The ints of ``x``: an int, or an integer array."""
    return x.tolist() if isinstance(x, np.ndarray) else [x]


def _total(x) -> int:
    """The sum of ``x``: an int, or an integer array."""
    return int(x.sum()) if isinstance(x, np.ndarray) else x


def _clamp(x, length: int):
    """``min(max(x, 0), length)`` of an int or, elementwise, of an integer array."""
    if isinstance(x, np.ndarray):
        return np.minimum(np.maximum(x, 0), length)
    return min(max(x, 0), length)


def periodic_count(lo, hi, period: int, start: int, length: int):
    """How many ``x`` in ``[lo, hi)`` have ``start <= x % period < start + length`` (ints, or integer
    arrays elementwise)."""
    full_hi, rest_hi = divmod(hi, period)
    full_lo, rest_lo = divmod(lo, period)
    return (full_hi - full_lo) * length + _clamp(rest_hi - start, length) - _clamp(rest_lo - start, length)


def edge_blocks(order: LoopOrder, lo, hi, nb_i: int, nb_j: int) -> tuple:
    """Of output blocks ``[lo, hi)`` in :func:`plan_gemm`'s enumeration: how many are in the last
    row block, in the last column block, and in both (ints, or integer arrays elementwise)."""
    per = nb_i * nb_j
    if order is LoopOrder.M_OUTER:  # block = (b nb_i + i) nb_j + j
        last_i = periodic_count(lo, hi, per, (nb_i - 1) * nb_j, nb_j)
        last_j = periodic_count(lo, hi, nb_j, nb_j - 1, 1)
    else:  # block = (b nb_j + j) nb_i + i
        last_i = periodic_count(lo, hi, nb_i, nb_i - 1, 1)
        last_j = periodic_count(lo, hi, per, (nb_j - 1) * nb_i, nb_i)
    return last_i, last_j, periodic_count(lo, hi, per, per - 1, 1)


class Geometry(NamedTuple):
    """What the estimate (:class:`~mixpe_sys.mapping.estimate.Estimator`) needs of a tiling's geometry on ``T`` tiles (no design figure in it)."""

    nb_i: int
    nb_j: int
    nk: int
    blocks: int
    traffic: int  # DRAM bytes (:func:`dram_traffic`)
    a_deliveries: float  # activation bytes delivered to the tiles
    w_frac: float  # weight loads per output block
    a_frac: float  # activation loads per output block
    tm: int  # the full block's rows and columns (at most the GEMM's)
    tn: int
    m_edge: int  # the last row block's rows, the last column block's columns
    n_edge: int
    k_full: int  # a full K slice, the last one
    k_edge: int
    own_share: float  # of its first block's activation tiles, the fraction a tile stages itself
    spans: int  # busy tiles
    rows: int  # distinct (instance, row block) of the busy tiles' first blocks (with a global buffer)
    shares: tuple  # distinct block counts (:func:`_share_counts`) of the busy tiles' shares
    whole: tuple  # the block counts of all the blocks


def _share_counts(order: LoopOrder, lo, hi, nb_i: int, nb_j: int) -> tuple:
    """Of output blocks ``[lo, hi)``: how many are full, in the last row block only, in the last column
    block only, and in both (:func:`edge_blocks`; ints, or integer arrays elementwise)."""
    last_i, last_j, both = edge_blocks(order, lo, hi, nb_i, nb_j)
    return hi - lo - last_i - last_j + both, last_i - both, last_j - both, both


@lru_cache(maxsize=1 << 16)
def geometry(spec: GemmSpec, order: LoopOrder, tm: int, tn: int, tk: int, T: int, shared: bool) -> Geometry:
    """The geometry of a tiling whose output blocks are shared over ``T`` tiles (memoised, a pure function)."""
    nb_i, nb_j, nk = ceil(spec.m / tm), ceil(spec.n / tn), ceil(spec.k / tk)
    blocks = spec.batch * nb_i * nb_j
    traffic, a_deliveries, w_frac, a_frac = dram_traffic(spec, T, order, tm, tn, tk, shared)
    tm, tn = min(tm, spec.m), min(tn, spec.n)
    # tiles that work on the same row block at once, and the fraction of its first block's
    # activation tiles a tile stages itself (the others find them staged)
    sharing = max(1, min(nb_j, T // (spec.batch * nb_i)))
    spans = _busy_spans(blocks, T)
    firsts: set = set()  # (instance and row block as one number, first K slice) of each busy tile's first step
    shares: set = set()
    busy = 0
    for lo, hi in spans:
        busy += len(_each(lo))
        shares.update(zip(*map(_each, _share_counts(order, lo, hi, nb_i, nb_j))))
    if shared:  # each tile starts its K loop at its own slice (k_rotation): its first tile is its own
        for t in range(T):
            lo = (blocks * t) // T
            if (blocks * (t + 1)) // T > lo:
                inst, row = _first_row(order, lo, nb_i, nb_j)
                firsts.add((inst * nb_i + row, k_rotation(t, nk)))
    return Geometry(nb_i=nb_i, nb_j=nb_j, nk=nk, blocks=blocks, traffic=traffic, a_deliveries=a_deliveries,
                     w_frac=w_frac, a_frac=a_frac, tm=tm, tn=tn, m_edge=spec.m - (nb_i - 1) * tm,
                     n_edge=spec.n - (nb_j - 1) * tn, k_full=min(tk, spec.k), k_edge=spec.k - (nk - 1) * tk,
                     own_share=max(1 / sharing, 1 / nk), spans=busy, rows=len(firsts), shares=tuple(sorted(shares)),
                     whole=_share_counts(order, 0, blocks, nb_i, nb_j))



def _first_row(order: LoopOrder, block, nb_i: int, nb_j: int) -> tuple:
    """(instance, row block) of output block number ``block`` in :func:`plan_gemm`'s enumeration (ints,
    or integer arrays elementwise)."""
    if order is LoopOrder.M_OUTER:
        return divmod(block // nb_j, nb_i)
    return block // (nb_i * nb_j), block % nb_i
