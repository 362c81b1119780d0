"""Laying a tiling out as tile steps: which compute tile runs which output blocks, and the
bytes and addresses of every step (geometry only; the hardware times the steps)."""

from __future__ import annotations

from functools import partial
from math import ceil

from ..errors import MappingError
from ..hw.accelerator import plan_time_lower_bound_ns, steps_time_lower_bound_ns
from ..hw.config import AcceleratorConfig
from ..hw.plan import GemmPlan, GemmTiling, LoopOrder, TileStep
from ..hw.tile_step import StepTimer
from ..workload.gemm_spec import GemmSpec
from .chunked_steps import ChunkedSteps

_ALIGN_BYTES = 4096

#: a plan of more tile steps than this makes each tile's steps on demand (:class:`ChunkedSteps`), so
#: that a GPU-scale GEMM's millions of steps are never all held at once
LAZY_STEPS = 1 << 18


def lay_out(spec: GemmSpec, accel: AcceleratorConfig, tiling: GemmTiling) -> GemmPlan:
    """Cut ``spec`` into each compute tile's steps under ``tiling``.

    Output blocks ``(inst, i, j)`` are enumerated in the loop order and split
    into ``tiling.tiles`` (0: all the design's tiles) contiguous, near-equal
    shares, one for each of the tiles ``0 .. tiling.tiles - 1``; the others
    stay idle. Each block runs its K
    steps back to back and writes its output after the last. Each tile starts
    its blocks' K loops at its own K slice (:func:`k_rotation`) and wraps
    around, so tiles working on the same row block at the same time ask for
    different activation tiles.

    With ``tiling.split_k = s > 1`` each block's K slices are cut into ``s`` contiguous ranges
    (:func:`split_ranges`), and the work items ``(inst, i, j, range)``, ranges innermost, are
    shared over the tiles instead. Each item ends by writing its partial sums (at the accumulator
    width): into the global buffer when the design has one and all the partial sums fit one slot of
    it, to DRAM otherwise. A second phase (``plan.then``, :func:`_reduction`) adds them up.
    """
    tm, tn, tk = tiling.tm, tiling.tn, tiling.tk
    nb_i, nb_j, nk = ceil(spec.m / tm), ceil(spec.n / tn), ceil(spec.k / tk)
    blocks, T = _blocks(spec, accel, tiling)
    split = tiling.split_k
    ranges = split_ranges(nk, split)
    items = [(b, i, j, p) for b, i, j in blocks for p in range(split)]
    ms, ns, ks = _block_sizes(spec, tiling)
    a_full, w_full = spec.activation_bytes(tm, tk), spec.weight_bytes(tk, tn)
    a_base = 0
    w_base = _align(spec.batch * nb_i * nk * a_full)
    o_base = w_base + _align(spec.batch * nb_j * nk * w_full)
    o_full = spec.output_bytes(tm, tn)
    p_base = o_base + _align(spec.batch * nb_i * nb_j * o_full)
    p_full = partial_bytes(accel, tm, tn)
    keep = split > 1 and keeps_partials(spec, accel, tiling)
    a_bytes_of = {(m, k): spec.activation_bytes(m, k) for m in set(ms) for k in set(ks)}
    w_bytes_of = {(k, n): spec.weight_bytes(k, n) for k in set(ks) for n in set(ns)}
    # every operand tile's key, made once (the steps that load a tile share its key)
    a_keys = [[[(b, i, kk) for kk in range(nk)] for i in range(nb_i)] for b in range(spec.batch)]
    w_keys = [[[(b, j, kk) for kk in range(nk)] for j in range(nb_j)] for b in range(spec.batch)]
    def tile_steps(t: int, lo: int, q0: int, q1: int) -> list[TileStep]:
        """The steps of items ``q0 .. q1 - 1`` of tile ``t``, whose first item is ``lo``."""
        steps: list[TileStep] = []
        prev_a = prev_w = None
        orders = k_orders[t]
        if q0 > lo:  # the keys the tile's previous step loaded
            b, i, j, p = items[q0 - 1]
            kk = orders[p][-1][1]
            prev_a, prev_w = a_keys[b][i][kk], w_keys[b][j][kk]
        index = sum(len(orders[p]) for *_, p in items[lo:q0]) if split > 1 else (q0 - lo) * nk
        for b, i, j, p in items[q0:q1]:
            m, n = ms[i], ns[j]
            a_row, w_col = (b * nb_i + i) * nk, (b * nb_j + j) * nk
            a_block_keys, w_block_keys = a_keys[b][i], w_keys[b][j]
            block = (b * nb_i + i) * nb_j + j
            if split == 1:
                store_bytes, store_addr, store_key = spec.output_bytes(m, n), o_base + block * o_full, None
            else:
                store_bytes, store_addr = partial_bytes(accel, m, n), p_base + (block * split + p) * p_full
                store_key = ("partial", b, i, j, p) if keep else None
            k_order = orders[p]
            last = len(k_order) - 1
            for pos, kk in k_order:
                k = ks[kk]
                a_key, w_key = a_block_keys[kk], w_block_keys[kk]
                load_a, load_w = a_key != prev_a, w_key != prev_w
                prev_a, prev_w = a_key, w_key
                steps.append(TileStep(
                    index, b, i, j, pos, m, n, k, a_key if load_a else None, a_bytes_of[m, k] if load_a else 0,
                    a_base + (a_row + kk) * a_full, w_key if load_w else None, w_bytes_of[k, n] if load_w else 0,
                    w_base + (w_col + kk) * w_full, store_bytes if pos == last else 0, store_addr, kk,
                    store_key=store_key if pos == last else None))
                index += 1
        return steps

    k_orders = [[[(pos, k0 + (pos + k_rotation(t, k1 - k0)) % (k1 - k0)) for pos in range(k1 - k0)]
                 for k0, k1 in ranges] for t in range(T)]
    lazy = split == 1 and len(items) * nk > LAZY_STEPS
    per_tile: list = []
    for t in range(T):
        lo, hi = (len(items) * t) // T, (len(items) * (t + 1)) // T
        if lazy:
            per_tile.append(ChunkedSteps(partial(tile_steps, t, lo), lo, hi, nk))
        else:
            per_tile.append(tuple(tile_steps(t, lo, lo, hi)))
    per_tile += [()] * (accel.num_tiles - T)
    then = None
    if split > 1:
        then = _reduction(spec, accel, tiling, blocks, T, (ms, ns), (o_base, p_base), keep)
    return GemmPlan(spec=spec, tiling=tiling, steps=tuple(per_tile), then=then)


def split_ranges(nk: int, split: int) -> list[tuple[int, int]]:
    """The ``split`` contiguous ranges ``[k0, k1)`` of ``nk`` K slices, as even as can be (lengths differ by
    at most one)."""
    return [((nk * p) // split, (nk * (p + 1)) // split) for p in range(split)]


def partial_bytes(accel: AcceleratorConfig, m: int, n: int) -> int:
    """Bytes of an ``[m, n]`` block of partial sums at the tile's accumulator width."""
    return ceil(m * n * accel.tile.accumulator_bits / 8)


def keeps_partials(spec: GemmSpec, accel: AcceleratorConfig, tiling: GemmTiling) -> bool:
    """True when a K split's partial sums all stay in the global buffer: it exists and they fit one
    slot of it (the other slot keeps staging activation tiles)."""
    gbuf = accel.global_buffer
    if gbuf is None:
        return False
    ms, ns, _ = _block_sizes(spec, tiling)
    total = spec.batch * tiling.split_k * sum(partial_bytes(accel, m, n) for m in ms for n in ns)
    return total <= gbuf.slot_bytes


def _reduction(spec: GemmSpec, accel: AcceleratorConfig, tiling: GemmTiling, blocks, T: int, sizes: tuple,
               bases: tuple[int, int], keep: bool) -> GemmPlan:
    """The second phase of a K split: tile ``t`` of ``T`` takes a contiguous share of the output blocks
    and adds up each block's partial sums on its vector unit, one step (one add per element) for each,
    loading them from the global buffer (or DRAM, ``keep`` False), and stores the output block after
    the last. ``sizes``: the row and column blocks' sizes; ``bases``: the outputs' and the partial
    sums' first addresses."""
    tm, tn, split = tiling.tm, tiling.tn, tiling.split_k
    nb_i, nb_j = ceil(spec.m / tm), ceil(spec.n / tn)
    (ms, ns), (o_base, p_base) = sizes, bases
    o_full, p_full = spec.output_bytes(tm, tn), partial_bytes(accel, tm, tn)
    per_tile: list[tuple[TileStep, ...]] = []
    for t in range(T):
        lo, hi = (len(blocks) * t) // T, (len(blocks) * (t + 1)) // T
        steps: list[TileStep] = []
        for b, i, j in blocks[lo:hi]:
            m, n = ms[i], ns[j]
            block = (b * nb_i + i) * nb_j + j
            for p in range(split):
                steps.append(TileStep(
                    index=len(steps), inst=b, i=i, j=j, kk=p, m=m * n, n=1, k=0,
                    a_key=("partial", b, i, j, p), a_bytes=partial_bytes(accel, m, n),
                    a_addr=p_base + (block * split + p) * p_full, w_key=None, w_bytes=0, w_addr=0,
                    store_bytes=spec.output_bytes(m, n) if p == split - 1 else 0,
                    store_addr=o_base + block * o_full, k_slice=p))
        per_tile.append(tuple(steps))
    per_tile += [()] * (accel.num_tiles - T)
    return GemmPlan(spec=None, tiling=tiling, steps=tuple(per_tile), share_activations=keep,
                    vector_ops_per_element=1)


def lower_bound_ns(spec: GemmSpec, accel: AcceleratorConfig, tiling: GemmTiling, timer: StepTimer) -> float:
    """:func:`~mixpe_sys.hw.accelerator.plan_time_lower_bound_ns` of ``lay_out(spec, accel, tiling)``
    (the same float) without laying the steps out; ``timer``: the step timer of the tiling's dataflow.

    What the bound reads of the steps follows from the layout: with several K steps every step
    loads both operands (consecutive steps differ in their K slice); with one, a step loads an
    operand whose row (column) block differs from the previous step's. Every activation tile is
    loaded by some tile, so with a global buffer the DRAM reads every one of them once.
    """
    if tiling.split_k > 1:  # (rare: only GEMMs of fewer output blocks than tiles are split)
        return plan_time_lower_bound_ns(lay_out(spec, accel, tiling), accel)
    nk = ceil(spec.k / tiling.tk)
    blocks, T = _blocks(spec, accel, tiling)
    ms, ns, ks = _block_sizes(spec, tiling)
    # an operand block's bytes over all its K slices
    a_all = {m: sum(spec.activation_bytes(m, k) for k in ks) for m in set(ms)}
    w_all = {n: sum(spec.weight_bytes(k, n) for k in ks) for n in set(ns)}
    cycles_of: dict = {}

    def cycles(m: int, n: int, k: int, activations_new: bool, first_k: bool) -> int:
        key = (m, n, k, activations_new, first_k)
        hit = cycles_of.get(key)
        if hit is None:
            hit = cycles_of[key] = timer.gemm(m, n, k, activations_new, first_k).compute_cycles
        return hit

    tiles = []
    w_reads = a_loaded = 0
    for t in range(T):
        lo, hi = (len(blocks) * t) // T, (len(blocks) * (t + 1)) // T
        if hi <= lo:
            continue
        w_bytes = a_bytes = 0
        steps: list[int] = []
        if nk > 1:
            rotation = k_rotation(t, nk)
            k_order = [(pos, (pos + rotation) % nk) for pos in range(nk)]
            patterns: dict = {}  # each block's steps' cycles, by block shape
            for _, i, j in blocks[lo:hi]:
                m, n = ms[i], ns[j]
                pattern = patterns.get((m, n))
                if pattern is None:
                    pattern = patterns[m, n] = [cycles(m, n, ks[kk], True, pos == 0) for pos, kk in k_order]
                steps += pattern
                w_bytes += w_all[n]
                a_bytes += a_all[m]
            w_new = a_new = [True] * len(steps)
        else:
            w_new, a_new = [], []
            prev_a = prev_w = None
            for b, i, j in blocks[lo:hi]:
                m, n = ms[i], ns[j]
                load_a, load_w = (b, i) != prev_a, (b, j) != prev_w
                prev_a, prev_w = (b, i), (b, j)
                a_new.append(load_a)
                w_new.append(load_w)
                steps.append(cycles(m, n, ks[0], load_a, True))
                w_bytes += w_all[n] if load_w else 0
                a_bytes += a_all[m] if load_a else 0
        tiles.append((w_new, a_new, steps, w_bytes, a_bytes))
        w_reads += w_bytes
        a_loaded += a_bytes
    a_reads = spec.batch * sum(a_all[m] for m in ms) if accel.global_buffer is not None else a_loaded
    writes = spec.batch * sum(spec.output_bytes(m, n) for m in ms for n in ns)
    return steps_time_lower_bound_ns(accel, spec, True, tiles, w_reads + a_reads, writes)


def _blocks(spec: GemmSpec, accel: AcceleratorConfig, tiling: GemmTiling) -> tuple[list[tuple[int, int, int]], int]:
    """The output blocks ``(inst, i, j)`` in the loop order, and the number of tiles sharing them."""
    nb_i, nb_j = ceil(spec.m / tiling.tm), ceil(spec.n / tiling.tn)
    if tiling.order is LoopOrder.M_OUTER:
        blocks = [(b, i, j) for b in range(spec.batch) for i in range(nb_i) for j in range(nb_j)]
    else:
        blocks = [(b, i, j) for b in range(spec.batch) for j in range(nb_j) for i in range(nb_i)]
    T = tiling.tiles or accel.num_tiles
    if T > accel.num_tiles:
        raise MappingError(f"field 'tiles': the tiling uses {T} compute tiles, the design '{accel.name}' has "
                           f"{accel.num_tiles}")
    return blocks, T


def _block_sizes(spec: GemmSpec, tiling: GemmTiling) -> tuple[list[int], list[int], list[int]]:
    """The rows of each row block, the columns of each column block and the length of each K slice."""
    tm, tn, tk = tiling.tm, tiling.tn, tiling.tk
    return ([min(tm, spec.m - i * tm) for i in range(ceil(spec.m / tm))],
            [min(tn, spec.n - j * tn) for j in range(ceil(spec.n / tn))],
            [min(tk, spec.k - kk * tk) for kk in range(ceil(spec.k / tk))])


#: 1 / golden ratio: multiples of it modulo 1 spread evenly however many are taken
_GOLDEN = (5 ** 0.5 - 1) / 2


def k_rotation(tile: int, nk: int) -> int:
    """The K slice at which tile ``tile`` starts each output block's ``nk`` K steps.

    The starts follow the golden-ratio sequence, so any run of consecutive tiles (the tiles
    that share a row block) starts at nearly evenly spread K slices: each activation tile is
    first asked for, and staged from DRAM, by about one tile while the others find it staged.
    The order of the K steps only changes the order of the partial sums.
    """
    return int((tile * _GOLDEN) % 1.0 * nk)


def _align(nbytes: int) -> int:
    return ceil(nbytes / _ALIGN_BYTES) * _ALIGN_BYTES
