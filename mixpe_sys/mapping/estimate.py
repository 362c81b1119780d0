"""The mapper's time estimate of a tiling, following how the tiles will run it.

A step's cycles come from the hardware's own :class:`~mixpe_sys.hw.tile_step.StepTimer`,
the one the simulation uses; :meth:`Estimator.estimate` paces each tile's steps by their loads
and array time, shares the DRAM among the busy tiles and accounts for the uneven last round of
output blocks, on the tiling's block counts and DRAM bytes (:mod:`.block_counts`).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache, reduce
from math import ceil
from typing import NamedTuple

import numpy as np

from ..hw.config import AcceleratorConfig
from ..hw.dram import streaming_channel_bytes_per_s
from ..hw.plan import GemmTiling, LoopOrder
from ..hw.tile_step import StepTimer, step_timer
from ..workload.gemm_spec import GemmSpec
from .block_counts import Geometry, geometry
from .layout import keeps_partials, partial_bytes


class _Design(NamedTuple):
    """What the estimate needs of a design, computed once per tiling choice; the float figures may
    instead be arrays, one entry per design of a set that differs only in clock and DRAM
    bandwidth (:func:`stacked_figures`): every estimate is then an array of the same entries."""

    cycle_ns: float
    num_tiles: int
    dram_bytes_per_ns: float  # sustained: peak x efficiency, less row activations (hw.dram)
    dram_link_bytes_per_ns: float  # the interconnect port of the DRAM (inf without interconnect)
    channel_bytes_per_ns: float  # one DRAM channel, sustained
    channels: int
    interleave: int
    link_bytes_per_ns: float  # one tile's interconnect link (inf without interconnect)
    gbuf_bytes_per_cycle: int  # the global buffer's one port (0 without global buffer)
    weight_ns: float  # fixed latency DRAM -> weight buffer (DRAM, route, buffer)
    activation_ns: float  # DRAM -> activation buffer
    stage_ns: float  # DRAM -> global buffer
    hop_ns: float  # global buffer -> activation buffer
    store_ns: float  # output buffer -> DRAM


@lru_cache(maxsize=256)
def _mean_route_ns(noc, num_tiles: int, has_gbuf: bool, src: str, to_tiles: bool) -> float:
    """Mean latency (ns) of the interconnect routes from ``src`` to every tile (or to the global buffer)."""
    import networkx as nx

    from ..hw.noc import GBUF_NODE, build_topology, tile_node
    # (a link's latency does not depend on the bandwidths: any DRAM bandwidth gives the same routes)
    g = build_topology(noc, num_tiles, has_gbuf, 1.0)
    dsts = [tile_node(t) for t in range(num_tiles)] if to_tiles else [GBUF_NODE]
    return sum(nx.shortest_path_length(g, src, d, weight="latency_ns") for d in dsts) / len(dsts)


def design_figures(accel: AcceleratorConfig) -> _Design:
    """The bandwidths and fixed latencies of ``accel`` that the estimate uses."""
    from ..hw.noc import DRAM_NODE, GBUF_NODE
    cyc = accel.cycle_ns
    tile, dram, noc, gbuf = accel.tile, accel.dram, accel.noc, accel.global_buffer

    def route(src: str, to_tiles: bool) -> float:
        if noc is None:
            return 0.0
        return _mean_route_ns(noc, accel.num_tiles, gbuf is not None, src, to_tiles)

    inf = float("inf")
    to_tile = route(DRAM_NODE, True)
    stage = hop = 0.0
    if gbuf is not None:
        stage = dram.latency_ns + route(DRAM_NODE, False) + gbuf.latency_cycles * cyc
        hop = (gbuf.latency_cycles + tile.activation_buffer.latency_cycles) * cyc + route(GBUF_NODE, True)
    return _Design(
        cycle_ns=cyc, num_tiles=accel.num_tiles,
        dram_bytes_per_ns=streaming_channel_bytes_per_s(dram) * dram.channels * 1e-9,
        dram_link_bytes_per_ns=(noc.dram_link_bandwidth_bytes_per_s or dram.bandwidth_bytes_per_s) * 1e-9
        if noc is not None else inf,
        channel_bytes_per_ns=streaming_channel_bytes_per_s(dram) * 1e-9, channels=dram.channels,
        interleave=dram.interleave_bytes,
        link_bytes_per_ns=noc.link_bandwidth_bytes_per_s * 1e-9 if noc is not None else inf,
        gbuf_bytes_per_cycle=gbuf.bytes_per_cycle if gbuf is not None else 0,
        weight_ns=dram.latency_ns + to_tile + tile.weight_buffer.latency_cycles * cyc,
        activation_ns=dram.latency_ns + to_tile + tile.activation_buffer.latency_cycles * cyc,
        stage_ns=stage, hop_ns=hop,
        store_ns=dram.latency_ns + to_tile + tile.output_buffer.latency_cycles * cyc)


#: the figures that must be the same for every design of a stack (:func:`stacked_figures`)
_COUNTS = ("num_tiles", "channels", "interleave", "gbuf_bytes_per_cycle")


def stacked_figures(designs: list[AcceleratorConfig]) -> _Design:
    """The figures (:func:`design_figures`) of ``designs``, which differ only in clock and DRAM
    bandwidth, as one :class:`_Design` of arrays (ns, bytes/ns; one entry per design, in order)."""
    figs = [design_figures(a) for a in designs]
    fields = {}
    for name in _Design._fields:
        values = [getattr(f, name) for f in figs]
        if name in _COUNTS:
            if any(v != values[0] for v in values):
                raise ValueError(f"stacked designs differ in {name}: {values}")
            fields[name] = values[0]
        else:
            fields[name] = np.array(values, dtype=float)
    return _Design(**fields)


def _mx(*xs):
    """The largest of ``xs`` (floats, or arrays elementwise)."""
    return reduce(np.maximum, xs)


def _dram_ns(d: _Design, nbytes: int) -> float:
    """Time (ns) one transfer alone occupies the DRAM: its largest share of one channel."""
    if nbytes <= 0:
        return 0.0
    share = min(nbytes, ceil(ceil(nbytes / d.interleave) / d.channels) * d.interleave)
    return share / d.channel_bytes_per_ns


def _port_ns(d: _Design, nbytes: int, bytes_per_cycle: int) -> float:
    return ceil(nbytes / bytes_per_cycle) * d.cycle_ns if nbytes > 0 else 0.0


class Estimator:
    """The estimates (:meth:`estimate`) of one GEMM's tilings on one design, memoising the step loads
    and output-block times that tilings share.

    Parameters
    ----------
    spec:
        The GEMM.
    accel:
        The design.
    d:
        Its figures (:func:`design_figures`; its ``num_tiles`` is not used).
    shared:
        True when activation tiles are staged once in the global buffer for all tiles.
    """

    def __init__(self, spec: GemmSpec, accel: AcceleratorConfig, d: _Design, shared: bool):
        self.spec, self.accel, self.d, self.shared = spec, accel, d, shared
        self._loads: dict = {}
        self._stores: dict = {}
        self._blocks: dict = {}
        self._others: dict = {}

    def for_spec(self, spec: GemmSpec) -> "Estimator":
        """The estimator of another GEMM on the same designs (memoised)."""
        hit = self._others.get(spec)
        if hit is None:
            hit = self._others[spec] = Estimator(spec, self.accel, self.d, self.shared)
        return hit

    def loads(self, m: int, n: int, k: int) -> tuple[float, float, float]:
        """(weight load, activation load from the global buffer, activation load staged from DRAM) ns."""
        hit = self._loads.get((m, n, k))
        if hit is not None:
            return hit
        spec, d, tile = self.spec, self.d, self.accel.tile
        w_bytes, a_bytes = spec.weight_bytes(k, n), spec.activation_bytes(m, k)
        w_ns = d.weight_ns + _mx(_port_ns(d, w_bytes, tile.weight_buffer.bytes_per_cycle),
                                 w_bytes / d.link_bytes_per_ns, w_bytes / d.dram_link_bytes_per_ns,
                                 _dram_ns(d, w_bytes))
        a_port = _port_ns(d, a_bytes, tile.activation_buffer.bytes_per_cycle)
        if self.shared:
            gbuf = _port_ns(d, a_bytes, d.gbuf_bytes_per_cycle)
            hop = d.hop_ns + _mx(gbuf, a_bytes / d.link_bytes_per_ns, a_port)
            staged = d.stage_ns + _mx(_dram_ns(d, a_bytes), a_bytes / d.dram_link_bytes_per_ns, gbuf) + hop
        else:
            hop = staged = d.activation_ns + _mx(a_port, a_bytes / d.link_bytes_per_ns,
                                                 a_bytes / d.dram_link_bytes_per_ns, _dram_ns(d, a_bytes))
        out = self._loads[m, n, k] = (w_ns, hop, staged)
        return out

    def store_ns(self, m: int, n: int) -> float:
        """Time (ns) of an ``[m, n]`` output block's store."""
        hit = self._stores.get((m, n))
        if hit is not None:
            return hit
        d, tile = self.d, self.accel.tile
        o_bytes = self.spec.output_bytes(m, n)
        out = self._stores[m, n] = d.store_ns + _mx(_port_ns(d, o_bytes, tile.output_buffer.bytes_per_cycle),
                                                    o_bytes / d.link_bytes_per_ns, o_bytes / d.dram_link_bytes_per_ns,
                                                    _dram_ns(d, o_bytes))
        return out

    def block_ns(self, timer: StepTimer, g: Geometry, m: int, n: int, staged_share: float) -> float:
        """One ``[m, n]`` output block's K steps on a tile of tiling ``g``; ``staged_share`` of its
        activation loads are staged."""
        nk, k_full, k_edge, w_frac, a_frac = g.nk, g.k_full, g.k_edge, g.w_frac, g.a_frac
        key = (timer, m, n, staged_share, nk, k_full, k_edge, w_frac, a_frac)
        hit = self._blocks.get(key)
        if hit is not None:
            return hit
        spec, d, shared = self.spec, self.d, self.shared
        cyc = d.cycle_ns
        total = slack = 0.0
        for k, first_k, count in ((k_full if nk > 1 else k_edge, True, 1), (k_full, False, nk - 2),
                                  (k_edge, False, 1 if nk > 1 else 0)):
            if count <= 0:
                continue
            c = timer.gemm(m, n, k, True, first_k)
            w_ns, hop, staged = self.loads(m, n, k)
            array, dequant = c.compute_cycles * cyc, c.dequant_cycles * cyc
            load = _mx(w_ns * w_frac, hop * a_frac)
            if not shared:  # both operands come through the same DRAM channels
                load = _mx(load, d.weight_ns + _dram_ns(d, ceil(spec.weight_bytes(k, n) * w_frac
                                                                + spec.activation_bytes(m, k) * a_frac)))
            period = _mx(load, array, dequant)
            if staged_share:
                period = period + staged_share * (_mx(w_ns * w_frac, staged * a_frac, array, dequant) - period)
            total = total + count * period
            slack = _mx(0.0, load - array)
        if not self.accel.tile.output_buffer.double_buffered:
            # the next block's first step waits for this block's output to be stored
            total = total + _mx(0.0, self.store_ns(m, n) - slack)
        self._blocks[key] = total
        return total

    def estimate(self, timer: StepTimer, order: LoopOrder, tm: int, tn: int, tk: int,
                 T: int) -> tuple[float, int, int]:
        """(estimated time s, tile steps, DRAM bytes) of a tiling on ``T`` tiles, following how the
        tiles run it.

        A tile's loader keeps one load in flight and prefetches into the free half of each buffer,
        so a tile step takes the longest of its array time, its dequant time and its loads (fixed
        latencies plus the bytes over the slowest port on the way, alone on the DRAM). An activation
        tile that no other tile has asked for yet is first staged from DRAM into the global buffer;
        the tiles sharing a row block start their K loops at spread-out positions
        (:func:`~mixpe_sys.mapping.layout.k_rotation`), so each stages only its share. The output
        blocks are split over the tiles as :func:`~mixpe_sys.mapping.layout.lay_out` does (``q`` or
        ``q + 1`` blocks each, edge blocks smaller): the estimate is the larger of the busiest tile's
        own time and a two-phase account of the DRAM (while all tiles work, then while those with
        an extra block finish it, each phase taking the longer of the tiles' pace and the sustained
        DRAM bandwidth for its share of the traffic), bounded below by the global buffer's port and
        links and the DRAM's interconnect port; the last step's array time and its output store
        follow.
        """
        spec, d, shared = self.spec, self.d, self.shared
        cyc = d.cycle_ns
        g = geometry(spec, order, tm, tn, tk, T, shared)
        blocks, nk, traffic = g.blocks, g.nk, g.traffic
        tm, tn, m_edge, n_edge, k_full = g.tm, g.tn, g.m_edge, g.n_edge, g.k_full
        sizes = {(a, b): self.block_ns(timer, g, a, b, 0.0) for a in {tm, m_edge} for b in {tn, n_edge}}
        s_full, s_row, s_col, s_both = sizes[tm, tn], sizes[m_edge, tn], sizes[tm, n_edge], sizes[m_edge, n_edge]

        def tile_ns(counts: tuple[int, int, int, int]) -> float:
            """Own time of blocks of these counts on one tile, activations found staged."""
            full, row, col, both = counts
            return full * s_full + row * s_row + col * s_col + both * s_both

        # the first block also stages its share of the activation tiles
        first_extra = self.block_ns(timer, g, tm, tn, g.own_share) - s_full
        w_first, _, staged_first = self.loads(tm, tn, k_full)
        a_first = spec.activation_bytes(tm, k_full)
        # the tiles start together: the first steps' distinct activation tiles are staged one after
        # another into the global buffer and delivered one after another out of it (without one,
        # every tile's first loads share the DRAM)
        if shared:
            gbuf_rate = np.minimum(d.link_bytes_per_ns, d.gbuf_bytes_per_cycle / cyc)
            # (the first weight tiles come through the DRAM beside the stagings)
            wave = _mx(g.rows * a_first / gbuf_rate, g.spans * a_first / gbuf_rate,
                       (g.rows * a_first + g.spans * spec.weight_bytes(k_full, tn)) / d.dram_bytes_per_ns)
        else:
            wave = g.spans * (a_first + spec.weight_bytes(k_full, tn)) / d.dram_bytes_per_ns
        # a lone tile's first loads take their fixed latencies and their own bytes' time; started
        # together, the last tile's take the latencies and the whole wave's bytes' time
        fixed = d.stage_ns + d.hop_ns if shared else d.activation_ns
        wave = _mx(0.0, wave - _mx(staged_first - fixed, w_first - d.weight_ns))
        start = wave + first_extra
        busiest = start + _mx(*(tile_ns(counts) for counts in g.shares))
        mean_block = tile_ns(g.whole) / blocks
        q, extra = divmod(blocks, T)
        # the busy tiles' last output stores are the tail's
        traffic_before_tail = traffic - g.spans * spec.output_bytes(tm, tn)
        phases = []  # (pace of the busy tiles ns, DRAM bytes of the phase)
        if q:
            phases.append((start + q * mean_block, traffic_before_tail * q * T / blocks))
        if extra:
            phases.append((mean_block + (0.0 if q else start), traffic_before_tail * extra / blocks))
        total = 0.0
        dram_bound = False
        for own, nbytes in phases:
            dram = nbytes / d.dram_bytes_per_ns
            dram_bound = dram_bound | (dram > own)
            total = total + _mx(own, dram)
        # the periods above hold every step's load or array time, whichever is longer; a pipeline of
        # steps also pays the shorter of the two once (the first load before the first array pass, or
        # the last array pass after the last load), then the last output's store
        last = timer.gemm(tm, tn, k_full, True, nk == 1)  # (the K slice a tile runs last depends on its rotation)
        last_ns = max(last.compute_cycles, last.dequant_cycles) * cyc
        tail = np.minimum(last_ns, _mx(w_first, staged_first)) + self.store_ns(tm, tn) + np.where(dram_bound, d.weight_ns, 0.0)
        bound = traffic / d.dram_link_bytes_per_ns
        if shared:  # staging writes and deliveries share the global buffer's port; each has its link
            a_staged = spec.batch * spec.activation_bytes(spec.m, spec.k)
            a_deliveries = g.a_deliveries
            bound = _mx(bound, _port_ns(d, ceil(a_deliveries + a_staged), d.gbuf_bytes_per_cycle),
                        a_deliveries / d.link_bytes_per_ns, a_staged / d.link_bytes_per_ns)
        return _mx(_mx(total, busiest) + tail, bound) * 1e-9, blocks * nk, traffic

    def split_estimate(self, dataflow, tm: int, tn: int, tk: int, T: int, split: int) -> tuple:
        """(estimated time s, DRAM bytes) of a tiling with its K split ``split`` ways on ``T`` tiles: the
        ranges as a batched GEMM (:func:`split_spec`), then the reduction (:meth:`reduction_ns`)."""
        spec, accel = self.spec, self.accel
        kept = keeps_partials(spec, accel, GemmTiling(tm, tn, tk, LoopOrder.M_OUTER, dataflow, 0.0, T, split))
        part = self.for_spec(split_spec(spec, accel, tk, split))
        first, _, traffic = part.estimate(step_timer(accel, part.spec, dataflow), LoopOrder.M_OUTER, tm, tn, tk, T)
        partials = part.spec.batch * part.spec.output_bytes(spec.m, spec.n)
        second = self.reduction_ns(step_timer(accel, None, dataflow, 1), tm, tn, split, T, kept)
        # the operands as the ranges read them, the partial sums out and (from DRAM) back, the output
        traffic += spec.batch * spec.output_bytes(spec.m, spec.n) - (partials if kept else -partials)
        return first + second * 1e-9, traffic

    def reduction_ns(self, timer: StepTimer, tm: int, tn: int, split: int, T: int, kept: bool):
        """The second phase of a K split (:func:`~mixpe_sys.mapping.layout.lay_out`) on ``T`` tiles: each
        busy tile adds up its output blocks' ``split`` partial sums one load at a time (from the global
        buffer when ``kept``, else from DRAM), each step the longer of its load and its vector work
        (``timer``: the hardware's vector-step timer, one op per element), then stores the last
        block; bounded below by the global buffer's port and the DRAM's bandwidth (ns)."""
        spec, d, tile = self.spec, self.d, self.accel.tile
        cyc = d.cycle_ns
        nb_i, nb_j = ceil(spec.m / tm), ceil(spec.n / tn)
        blocks = spec.batch * nb_i * nb_j
        m, n = min(tm, spec.m), min(tn, spec.n)
        part = partial_bytes(self.accel, m, n)
        a_port = _port_ns(d, part, tile.activation_buffer.bytes_per_cycle)
        if kept:
            load = d.hop_ns + _mx(_port_ns(d, part, d.gbuf_bytes_per_cycle), part / d.link_bytes_per_ns, a_port)
        else:
            load = d.activation_ns + _mx(a_port, part / d.link_bytes_per_ns, part / d.dram_link_bytes_per_ns,
                                         _dram_ns(d, part))
        step = timer.vector(m * n, part, 0).compute_cycles * cyc
        per_tile = ceil(blocks / T) * split
        own = load + per_tile * _mx(load, step) + self.store_ns(m, n)
        parts = blocks * split * part
        outputs = spec.batch * spec.output_bytes(spec.m, spec.n)
        bound = (outputs + (0 if kept else parts)) / d.dram_bytes_per_ns
        if kept:
            bound = _mx(bound, _port_ns(d, parts, d.gbuf_bytes_per_cycle))
        return _mx(own, bound)


def split_spec(spec: GemmSpec, accel: AcceleratorConfig, tk: int, split: int) -> GemmSpec:
    """The GEMM one of ``split`` K ranges of ``spec`` computes under K tiles of ``tk``, for the estimate:
    ``batch x split`` instances of the longest range's K (:func:`~mixpe_sys.mapping.layout.split_ranges`),
    each written at the accumulator width."""
    nk = ceil(spec.k / tk)
    k = min(spec.k, ceil(nk / split) * tk)
    return dataclasses.replace(spec, batch=spec.batch * split, k=k, output_bits=accel.tile.accumulator_bits)
