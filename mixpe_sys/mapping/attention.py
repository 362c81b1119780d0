"""Mapping a fused attention op onto the tiles: Q blocks stationary, K/V blocks streamed (geometry only;
the hardware times the steps, :mod:`mixpe_sys.hw.attention_step`).

Work items. Prefill (and any op with several query rows): each (instance, Q
block of ``Br`` rows) is one item; its steps walk the key blocks of ``Bc`` keys
that its last row attends to (blocks entirely above the causal diagonal are
skipped, the last block is cut at that row's limit; without the causal mask every
item walks all ``kv_len`` keys and no block is masked), the first step loading the
Q block, every step loading one K/V block, the last storing the output block.
Decode, when there are fewer (instance, Q block) items than tiles: each item's
key blocks may be split into ``s = min(tiles // items, key blocks)`` contiguous
ranges (kept when the estimate says it is faster than no split), as FlashDecoding
does (Dao, Haziza, Massa and Sizov, "Flash-Decoding for long-context inference", 2023;
FlashAttention-2's split-KV kernel): every range is an item
that stores a partial result (unnormalised outputs, row max and row sum at the
accumulator width) to DRAM, and a second phase, after every tile has finished,
merges each item's ``s`` partials on the vector unit (one step per partial) and
stores the output.

Items go to tiles longest first, each to the tile with the least work so far
(a GPU's block scheduler hands the next thread block to the first free SM;
causal Q blocks differ in length, so contiguous shares would be uneven).

Block sizes and dataflow: every ``Br``, ``Bc`` in powers of two (and the full
extent) whose Q block fits one activation-buffer slot, K + V block one
weight-buffer slot, and output accumulator, score block, row max and row sum
one output-buffer slot; the one with the smallest estimate wins (ties: fewer
DRAM bytes, then fewer steps). The estimate paces each item's steps by the
hardware's own step cost and their loads, spreads the items over the tiles
(the larger of the mean load and the longest item) and bounds the whole by the
DRAM's sustained bandwidth.
"""

from __future__ import annotations

import heapq
from functools import lru_cache, reduce
from math import ceil
from operator import add
from typing import NamedTuple

from ..errors import MappingError
from ..hw.attention_step import AttentionTimer
from ..hw.config import AcceleratorConfig
from ..hw.plan import GemmPlan, GemmTiling, LoopOrder, TileStep
from ..hw.sram import port_cycles
from ..workload.attention import AttentionSpec
from .estimate import design_figures

_ALIGN_BYTES = 4096
#: block sizes tried, rows and keys (each also cut to the op's extent)
BLOCK_SIZES = (16, 32, 64, 128, 256)


class Blocks(NamedTuple):
    """A fused attention mapping: block sizes, dataflow, key splits, and its estimate."""

    rows: int  # Br, query rows per Q block
    keys: int  # Bc, keys per K/V block
    dataflow: object
    splits: int  # key ranges per Q block (1 = no split)
    estimated_time_s: float
    dram_bytes: int
    steps: int


class _Item(NamedTuple):
    inst: int
    qblock: int
    split: int
    row0: int
    rows: int
    kv0: int  # first key block
    kv1: int  # one past the last key block


def _fits(spec: AttentionSpec, accel: AcceleratorConfig, br: int, bc: int) -> str | None:
    """The buffer field a (Br, Bc) mapping overflows, or None."""
    tile = accel.tile
    acc = tile.accumulator_bits
    if spec.q_bytes(br) > tile.activation_buffer.slot_bytes:
        return "tile.activation_buffer"
    if spec.kv_bytes(bc) > tile.weight_buffer.slot_bytes:
        return "tile.weight_buffer"
    if ceil(br * (spec.head_dim + bc + 2) * acc / 8) > tile.output_buffer.slot_bytes:
        return "tile.output_buffer"
    return None


def _items(spec: AttentionSpec, br: int, bc: int, tiles: int, splits: int | None = None) -> tuple[list[_Item], int]:
    """The work items of a (Br, Bc) mapping and the key splits per Q block (None: the rule of the module
    docstring)."""
    ranges, splits = _ranges(spec, br, bc, tiles, splits)
    return [_Item(inst, *r) for inst in range(spec.instances) for r in ranges], splits


@lru_cache(maxsize=4096)
def _ranges(spec: AttentionSpec, br: int, bc: int, tiles: int, splits: int | None = None) -> tuple[tuple, int]:
    """The work items of one instance as ``(qblock, split, row0, rows, kv0, kv1)`` (every instance has
    the same), and the key splits per Q block (:func:`_items`; memoised, a pure function)."""
    nq = ceil(spec.rows / br)
    per_q = []
    for i in range(nq):
        row0 = i * br
        rows = min(br, spec.rows - row0)
        per_q.append((row0, rows, ceil(spec.keys_for_row(row0 + rows - 1) / bc)))
    items = spec.instances * nq
    most = min(n for _, _, n in per_q)  # every range keeps at least one key block
    if splits is None:
        splits = max(1, min(tiles // items, most)) if items < tiles else 1
    elif not 1 <= splits <= most:
        raise MappingError(f"field 'splits': {splits} key ranges for Q blocks of {most} key blocks")
    out = []
    for i, (row0, rows, nkv) in enumerate(per_q):
        for s in range(splits):
            lo, hi = (nkv * s) // splits, (nkv * (s + 1)) // splits
            out.append((i, s, row0, rows, lo, hi))
    return tuple(out), splits


def _key_blocks(spec: AttentionSpec, row0: int, rows: int, j0: int, j1: int, bc: int) -> list[tuple[int, bool]]:
    """(keys loaded, masked) of key blocks ``j0 .. j1 - 1`` of the Q block of rows ``row0 .. row0 + rows - 1``."""
    last_row_keys, first_row_keys = spec.keys_for_row(row0 + rows - 1), spec.keys_for_row(row0)
    out = []
    for j in range(j0, j1):
        keys = min(bc, last_row_keys - j * bc)
        out.append((keys, j * bc + keys > first_row_keys))
    return out


def _assign(items: list[_Item], tiles: int) -> list[list[_Item]]:
    """Longest item first, each to the tile with the least key blocks so far (ties: the lowest tile)."""
    order = sorted(items, key=lambda it: (-(it.kv1 - it.kv0), it.inst, it.qblock, it.split))
    heap = [(0, t) for t in range(tiles)]
    out: list[list[_Item]] = [[] for _ in range(tiles)]
    for it in order:
        load, t = heapq.heappop(heap)
        out[t].append(it)
        heapq.heappush(heap, (load + it.kv1 - it.kv0, t))
    return out


def _estimate(spec: AttentionSpec, accel: AcceleratorConfig, timer: AttentionTimer, br: int,
              bc: int, splits: int | None = None) -> tuple[float, int, int, int]:
    """(estimated ns, DRAM bytes, steps, splits) of a (Br, Bc) mapping with ``splits`` key ranges (None: the
    most the rule allows)."""
    d = design_figures(accel)
    tile, cyc = accel.tile, accel.cycle_ns
    ranges, splits = _ranges(spec, br, bc, accel.num_tiles, splits)
    acc = tile.accumulator_bits

    def load_ns(nbytes: int, port) -> float:
        spread = min(d.channels, ceil(nbytes / d.interleave))
        return d.weight_ns + max(port_cycles(nbytes, port) * cyc, nbytes / d.link_bytes_per_ns,
                                 nbytes / d.dram_link_bytes_per_ns, nbytes / (d.channel_bytes_per_ns * spread))

    def block_step(rows: int, keys: int, pos: int, n: int, masked: bool) -> tuple[float, int]:
        """(ns, DRAM bytes) of the step at position ``pos`` of an item's ``n`` key blocks."""
        c = timer.block(rows, keys, pos == 0, masked, pos == n - 1 and splits == 1)
        kv = spec.kv_bytes(keys)
        return max(c.compute_cycles * cyc, load_ns(kv, tile.weight_buffer)), kv

    memo: dict = {}
    per_item = []  # (ns, DRAM bytes) of each item of one instance, in item order
    for _, _, row0, rows, kv0, kv1 in ranges:
        key = (row0, rows, kv0, kv1)
        hit = memo.get(key)
        if hit is None:
            ns, moved = 0.0, spec.q_bytes(rows)
            n = kv1 - kv0
            # the middle key blocks that are full and unmasked (those of j <= full_j) cost alike: a run
            # of positions 1 .. run_end (none when run_end < 1)
            full_j = min(spec.keys_for_row(row0 + rows - 1) // bc, spec.keys_for_row(row0) // bc) - 1
            run_end = max(0, min(n - 2, full_j - kv0))
            for pos, (keys, masked) in enumerate(_key_blocks(spec, row0, rows, kv0, kv0 + 1, bc)):
                step = block_step(rows, keys, pos, n, masked)
                ns += step[0]
                moved += step[1]
            if run_end:
                step = block_step(rows, bc, 1, n, False)
                for _ in range(run_end):
                    ns += step[0]
                moved += run_end * step[1]
            for pos, (keys, masked) in enumerate(_key_blocks(spec, row0, rows, kv0 + run_end + 1, kv1, bc),
                                                 run_end + 1):
                step = block_step(rows, keys, pos, n, masked)
                ns += step[0]
                moved += step[1]
            stored = spec.out_bytes(rows) if splits == 1 else spec.partial_bytes(rows, acc)
            hit = memo[key] = (ns + d.store_ns, moved + stored)
        per_item.append(hit)
    # every instance has the same items: the sums run over them in item order, instance after instance
    total = reduce(add, [ns for ns, _ in per_item] * spec.instances, 0.0)
    longest = max(0.0, *(ns for ns, _ in per_item))
    traffic = spec.instances * sum(moved for _, moved in per_item)
    steps = spec.instances * sum(kv1 - kv0 for *_, kv0, kv1 in ranges)
    est = max(total / accel.num_tiles, longest, traffic / d.dram_bytes_per_ns)
    if splits > 1:  # the combine phase: each Q block's partials read back, the output written
        blocks = spec.instances * ceil(spec.rows / br)
        part = spec.partial_bytes(min(br, spec.rows), acc)
        c = timer.combine(min(br, spec.rows), part, False, False)
        per = splits * max(c.compute_cycles * cyc, load_ns(part, tile.activation_buffer)) + d.store_ns
        moved = blocks * (splits * part + spec.out_bytes(min(br, spec.rows)))
        est += max(ceil(blocks / accel.num_tiles) * per, moved / d.dram_bytes_per_ns)
        traffic += moved
        steps += blocks * splits
    return est, traffic, steps, splits


@lru_cache(maxsize=1024)
def choose_blocks(spec: AttentionSpec, accel: AcceleratorConfig) -> Blocks:
    """The block sizes, dataflow and key splits of ``spec`` on ``accel`` (see the module docstring; memoised,
    a pure function).

    Raises
    ------
    MappingError
        If not even one query row and one key fit the tile's buffers.
    """
    rows = sorted({min(spec.rows, b) for b in BLOCK_SIZES})
    keys = sorted({min(spec.kv_len, b) for b in BLOCK_SIZES})
    best = None
    for df in accel.tile.pe_array.dataflows:
        timer = AttentionTimer(accel, spec, df)
        for br in rows:
            for bc in keys:
                if _fits(spec, accel, br, bc) is not None:
                    continue
                most = _ranges(spec, br, bc, accel.num_tiles)[1]
                for splits in sorted({1, most}):
                    est, traffic, steps, splits = _estimate(spec, accel, timer, br, bc, splits)
                    cand = (est, traffic, steps, -br, -bc, df.value)
                    if best is None or cand < best[0]:
                        best = (cand, Blocks(br, bc, df, splits, est * 1e-9, traffic, steps))
    if best is not None:
        return best[1]
    # no candidate fits: the largest smaller blocks that do (rows first), or an error
    small = (8, 4, 2, 1)
    for br in (b for b in small if b <= spec.rows):
        for bc in (b for b in small if b <= spec.kv_len):
            if _fits(spec, accel, br, bc) is None:
                df = accel.tile.pe_array.dataflows[0]
                est, traffic, steps, splits = _estimate(spec, accel, AttentionTimer(accel, spec, df), br, bc)
                return Blocks(br, bc, df, splits, est * 1e-9, traffic, steps)
    field = _fits(spec, accel, 1, 1)
    raise MappingError(f"field '{field}.capacity_bytes': one query row and one key of fused attention (head width "
                       f"{spec.head_dim}) do not fit a tile of design '{accel.name}'; run with attention=unfused")


def plan_attention(spec: AttentionSpec, accel: AcceleratorConfig, blocks: Blocks | None = None) -> GemmPlan:
    """Tile steps of ``spec`` on ``accel`` (the blocks :func:`choose_blocks` picks, unless given)."""
    b = blocks if blocks is not None else choose_blocks(spec, accel)
    br, bc = b.rows, b.keys
    field = _fits(spec, accel, br, bc)
    if field is not None:
        raise MappingError(f"field '{field}.capacity_bytes': fused attention blocks of {br} rows x {bc} keys "
                           f"(head width {spec.head_dim}) do not fit a slot of design '{accel.name}'")
    items, splits = _items(spec, br, bc, accel.num_tiles, b.splits)
    acc = accel.tile.accumulator_bits
    nq = ceil(spec.rows / br)
    nkv = ceil(spec.kv_len / bc)
    q_base = 0
    kv_base = _align(spec.instances * spec.q_bytes(spec.rows))
    kv_block = spec.kv_bytes(bc)
    o_base = kv_base + _align(spec.instances * nkv * kv_block)
    p_base = o_base + _align(spec.instances * spec.out_bytes(spec.rows))
    part_full = spec.partial_bytes(br, acc)

    def partial_addr(inst: int, i: int, s: int) -> int:
        return p_base + ((inst * nq + i) * splits + s) * part_full

    kv_bytes: dict = {}  # bytes of a key block, by its keys
    out_rows = spec.out_bytes(spec.rows)
    q_rows = spec.q_bytes(spec.rows)
    head_dim = spec.head_dim
    per_tile = []
    for tile_items in _assign(items, accel.num_tiles):
        steps: list[TileStep] = []
        for it in tile_items:
            inst, qb, rows = it.inst, it.qblock, it.rows
            n = it.kv1 - it.kv0
            o_addr = o_base + inst * out_rows + spec.out_bytes(it.row0)
            a_addr = q_base + inst * q_rows + spec.q_bytes(it.row0)
            store_addr = o_addr if splits == 1 else partial_addr(inst, qb, it.split)
            store_last = spec.out_bytes(rows) if splits == 1 else spec.partial_bytes(rows, acc)
            kv_row = kv_base + inst * nkv * kv_block
            blocks = _key_blocks(spec, it.row0, rows, it.kv0, it.kv1, bc)
            for pos, (j, (keys, masked)) in enumerate(zip(range(it.kv0, it.kv1), blocks)):
                last = pos == n - 1
                kv = kv_bytes.get(keys)
                if kv is None:
                    kv = kv_bytes[keys] = spec.kv_bytes(keys)
                first = pos == 0
                steps.append(TileStep(
                    len(steps), inst, qb, j, pos, rows, keys, head_dim,
                    ("q", inst, qb) if first else None, spec.q_bytes(rows) if first else 0, a_addr,
                    ("kv", inst, j), kv, kv_row + j * kv_block, store_last if last else 0, store_addr,
                    it.split, masked, last and splits == 1))
        per_tile.append(tuple(steps))
    tiling = GemmTiling(tm=br, tn=bc, tk=spec.head_dim, order=LoopOrder.M_OUTER, dataflow=b.dataflow,
                        estimated_time_s=b.estimated_time_s)
    then = _combine_plan(spec, accel, tiling, br, nq, splits, o_base, partial_addr) if splits > 1 else None
    return GemmPlan(spec=None, tiling=tiling, steps=tuple(per_tile), share_activations=False, attention=spec,
                    then=then)


def _combine_plan(spec, accel, tiling, br, nq, splits, o_base, partial_addr) -> GemmPlan:
    """The second phase of a split: each Q block's partials merged (one step each), the output stored."""
    acc = accel.tile.accumulator_bits
    blocks = [(inst, i) for inst in range(spec.instances) for i in range(nq)]
    T = accel.num_tiles
    per_tile = []
    for t in range(T):
        lo, hi = (len(blocks) * t) // T, (len(blocks) * (t + 1)) // T
        steps: list[TileStep] = []
        for inst, i in blocks[lo:hi]:
            row0 = i * br
            rows = min(br, spec.rows - row0)
            part = spec.partial_bytes(rows, acc)
            for s in range(splits):
                last = s == splits - 1
                steps.append(TileStep(
                    index=len(steps), inst=inst, i=i, j=0, kk=s, m=rows, n=1, k=0,
                    a_key=("partial", inst, i, s), a_bytes=part, a_addr=partial_addr(inst, i, s),
                    w_key=None, w_bytes=0, w_addr=0,
                    store_bytes=spec.out_bytes(rows) if last else 0,
                    store_addr=o_base + inst * spec.out_bytes(spec.rows) + spec.out_bytes(row0),
                    k_slice=s, normalize=last))
        per_tile.append(tuple(steps))
    return GemmPlan(spec=None, tiling=tiling, steps=tuple(per_tile), share_activations=False, attention=spec)


def _align(nbytes: int) -> int:
    return ceil(nbytes / _ALIGN_BYTES) * _ALIGN_BYTES
