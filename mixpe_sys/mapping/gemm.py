"""Tiling a GEMM onto an accelerator: tile sizes, loop order, dataflow, tile steps.

A GEMM is ``batch`` independent products ``[M, K] x [K, N] -> [M, N]``
(activations x weights). The mapper picks tile sizes ``(tm, tn, tk)`` that fit
one slot of each buffer, a loop order, and a dataflow, by estimating the time
of each candidate the way the tiles will run it (:func:`_estimate`: each tile's
steps paced by their loads and array time, the DRAM shared by the busy tiles,
the uneven last round of output blocks); it then cuts the GEMM into
:class:`TileStep` s and hands each compute tile a contiguous share of the
output blocks. Pure functions only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from math import ceil
from typing import Iterator, NamedTuple

from ..errors import MappingError
from ..hw.config import AcceleratorConfig, Dataflow, DequantPlacement
from ..hw.pe import pe_model
from ..workload.quant import NumberFormat
from .dataflow import array_cycles

_ALIGN_BYTES = 4096
#: the mapper accepts a tiling this much slower (estimated) than the fastest if it moves fewer DRAM bytes
#: (or as many in fewer tile steps)
TIME_SLACK = 0.01


class LoopOrder(str, enum.Enum):
    """Order of the output-block loops."""

    M_OUTER = "m_outer"  # activation tile stays, weight tiles stream (weights reloaded per row block)
    N_OUTER = "n_outer"  # weight tile stays, activation tiles stream


@dataclass(frozen=True, kw_only=True)
class GemmSpec:
    """One (batched) GEMM: ``batch`` x ``[m, k] x [k, n]``, with operand precisions.

    Attributes
    ----------
    m, n, k:
        Activation rows (tokens), output columns, reduction length.
    batch:
        Independent instances (e.g. batch x KV heads for attention).
    weight_bits, activation_bits, output_bits:
        Bits per element of the weight (or KV) operand, the activations and the output.
    activation_format:
        ``int`` or ``fp`` activations.
    group_size:
        Weights per quantization group along K; 0 = no group scales.
    scale_bits, zero_bits:
        Bits of each group's scale and zero point.
    """

    m: int
    n: int
    k: int
    batch: int = 1
    weight_bits: int = 4
    activation_bits: int = 8
    activation_format: NumberFormat = NumberFormat.INT
    output_bits: int = 8
    group_size: int = 0
    scale_bits: int = 16
    zero_bits: int = 4

    def __post_init__(self) -> None:
        for name in ("m", "n", "k", "batch", "weight_bits", "activation_bits", "output_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise MappingError(f"field '{name}': must be a positive integer, got {value!r}")
        if self.group_size < 0:
            raise MappingError(f"field 'group_size': must be >= 0, got {self.group_size!r}")

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all instances."""
        return self.batch * self.m * self.n * self.k

    def activation_bytes(self, m: int, k: int) -> int:
        """Bytes of an ``[m, k]`` activation tile."""
        return ceil(m * k * self.activation_bits / 8)

    def weight_bytes(self, k: int, n: int) -> int:
        """Bytes of a ``[k, n]`` weight tile including its group scales and zero points."""
        data = k * n * self.weight_bits
        if self.group_size:
            data += ceil(k / self.group_size) * n * (self.scale_bits + self.zero_bits)
        return ceil(data / 8)

    def output_bytes(self, m: int, n: int) -> int:
        """Bytes of an ``[m, n]`` output tile."""
        return ceil(m * n * self.output_bits / 8)

    def compulsory_bytes(self) -> tuple[int, int]:
        """(DRAM read bytes, DRAM write bytes) if each operand is read once and the output written once."""
        reads = self.batch * (self.activation_bytes(self.m, self.k) + self.weight_bytes(self.k, self.n))
        return reads, self.batch * self.output_bytes(self.m, self.n)


@dataclass(frozen=True, slots=True)
class TileStep:
    """One step of a compute tile: load operand tiles, run the array, maybe write back.

    Byte counts are what this step moves; keys identify operand tiles so a
    tile already resident (or already staged in the global buffer) is not
    fetched twice.
    """

    index: int
    inst: int
    i: int
    j: int
    kk: int  # position of the step in its output block's K loop (0 = first: accumulation starts)
    m: int
    n: int
    k: int
    a_key: tuple | None  # activation tile to load, None when resident
    a_bytes: int
    a_addr: int
    w_key: tuple | None  # weight tile to load, None when resident
    w_bytes: int
    w_addr: int
    compute_cycles: int  # array busy cycles, SRAM-bandwidth and in-loop conversion included
    array_cycles: int  # array cycles from the PE rule alone
    dequant_cycles: int  # post-GEMM dequant unit cycles (0 if none)
    sram_read_bytes: int
    sram_write_bytes: int
    store_bytes: int  # output bytes written to DRAM after this step (0 unless last K step)
    store_addr: int
    macs: int
    dequant_elements: int = 0  # elements scaled post-GEMM, or weights converted in-loop, in this step
    convert_cycles: int = 0  # in-loop converter busy cycles (overlapped with the array, inside compute_cycles)
    convert_stall_cycles: int = 0  # cycles the array waited on the in-loop converter (inside compute_cycles)
    a_sram_read_bytes: int = 0  # activation-buffer bytes read by the array
    w_sram_read_bytes: int = 0  # weight-buffer bytes read by the array
    k_slice: int = 0  # which K slice the step covers (rows k_slice * tk ... of the weights)


@dataclass(frozen=True)
class GemmTiling:
    """The chosen tile sizes, loop order and dataflow."""

    tm: int
    tn: int
    tk: int
    order: LoopOrder
    dataflow: Dataflow
    estimated_time_s: float


@dataclass(frozen=True)
class GemmPlan:
    """A mapped GEMM: its tiling and the steps of each compute tile."""

    spec: GemmSpec | None  # None for vector ops
    tiling: GemmTiling
    steps: tuple[tuple[TileStep, ...], ...]  # [tile][step]
    rate: Fraction | None  # MACs per PE per cycle (None for vector ops)
    share_activations: bool = True  # stage activation tiles once in the global buffer, if there is one

    def iter_steps(self) -> Iterator[tuple[int, TileStep]]:
        """(tile, step) for every step of every tile."""
        for t, steps in enumerate(self.steps):
            for s in steps:
                yield t, s

    def dram_bytes(self, shared_activations: bool) -> tuple[int, int]:
        """(read, write) DRAM bytes the steps request; with a global buffer each
        activation tile is read from DRAM once however many tiles use it."""
        shared_activations = shared_activations and self.share_activations
        reads = writes = 0
        seen: set = set()
        for _, s in self.iter_steps():
            reads += s.w_bytes
            writes += s.store_bytes
            if s.a_key is not None:
                if not shared_activations:
                    reads += s.a_bytes
                elif s.a_key not in seen:
                    seen.add(s.a_key)
                    reads += s.a_bytes
        return reads, writes


def _pow2_upto(limit: int, start: int = 1) -> list[int]:
    out, v = [], start
    while v < limit:
        out.append(v)
        v *= 2
    out.append(limit)
    return out


def _k_candidates(spec: GemmSpec) -> list[int]:
    base = spec.group_size if spec.group_size else 16
    cands = [k for k in _pow2_upto(spec.k, base) if k == spec.k or k % base == 0]
    return sorted(set(cands), reverse=True)


def _fit_largest(cands: list[int], fits) -> int | None:
    best = None
    for c in cands:
        if fits(c):
            best = c if best is None else max(best, c)
    return best


class _StepCost(NamedTuple):
    compute: int  # array busy cycles: PE rule, SRAM bandwidth and in-loop conversion
    array: int  # array cycles from the PE rule alone
    dequant: int  # post-GEMM dequant unit cycles
    sram_read: int
    sram_write: int
    dequant_elements: int
    convert: int  # in-loop converter cycles
    convert_stall: int
    a_reads: int
    w_reads: int


def _step_cycles(spec: GemmSpec, accel: AcceleratorConfig, rate: Fraction, dataflow: Dataflow,
                 m: int, n: int, k: int, load_a: bool, first_k: bool) -> _StepCost:
    """Cycles and SRAM bytes of one tile step."""
    tile = accel.tile
    arr = tile.pe_array
    factors = None
    if dataflow is Dataflow.OUTPUT_STATIONARY:
        factors = pe_model(arr.pe).output_stationary_factors(spec.weight_bits, spec.activation_bits,
                                                             spec.activation_format)
    a_cyc = array_cycles(m, n, k, arr.rows, arr.cols, rate, arr.pe.pipeline_depth_cycles, dataflow,
                         factors=factors, fill_drain=arr.fill_drain)
    a_tile = spec.activation_bytes(m, k)
    w_tile = spec.weight_bytes(k, n)
    if factors is not None:
        row_blocks, col_blocks = ceil(m / (arr.rows * factors[0])), ceil(n / (arr.cols * factors[1]))
        a_reads, w_reads = col_blocks * a_tile, row_blocks * w_tile
    else:
        row_blocks = 1  # weight-stationary/streaming: each weight enters the array once per step
        a_reads, w_reads = ceil(n / arr.cols) * a_tile, w_tile
    acc = ceil(m * n * tile.accumulator_bits / 8)
    out_rw = acc + (0 if first_k else acc)
    sram_cyc = max(ceil(a_reads / tile.activation_buffer.bytes_per_cycle),
                   ceil(w_reads / tile.weight_buffer.bytes_per_cycle),
                   ceil(out_rw / tile.output_buffer.bytes_per_cycle))
    compute = max(a_cyc, sram_cyc)
    dq = tile.dequant
    dequant = elems = convert = stall = 0
    if spec.group_size and dq.placement is DequantPlacement.IN_LOOP:
        # every weight is converted each time it enters the array, pipelined in front of it
        elems = k * n * row_blocks
        busy = ceil(elems / dq.elements_per_cycle)
        convert = busy + dq.latency_cycles
        new = max(compute, busy) + dq.latency_cycles
        stall, compute = new - compute, new
    elif spec.group_size and dq.placement is DequantPlacement.POST_GEMM:
        groups = ceil(k / spec.group_size)
        elems = m * n * groups + (m * groups if load_a else 0)  # scaled partial sums + activation group sums
        dequant = ceil(elems / dq.elements_per_cycle) + dq.latency_cycles
    return _StepCost(compute, a_cyc, dequant, a_reads + w_reads + out_rw - acc, acc, elems, convert, stall,
                     a_reads, w_reads)


class _Design(NamedTuple):
    """What the estimate needs of a design, computed once per :func:`choose_tiling` call."""

    cycle_ns: float
    num_tiles: int
    dram_bytes_per_ns: float  # sustained: peak x efficiency
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
def _mean_route_ns(noc, num_tiles: int, has_gbuf: bool, dram_bw: float, src: str, to_tiles: bool) -> float:
    """Mean latency (ns) of the interconnect routes from ``src`` to every tile (or to the global buffer)."""
    import networkx as nx

    from ..hw.noc import GBUF_NODE, build_topology, tile_node
    g = build_topology(noc, num_tiles, has_gbuf, dram_bw)
    dsts = [tile_node(t) for t in range(num_tiles)] if to_tiles else [GBUF_NODE]
    return sum(nx.shortest_path_length(g, src, d, weight="latency_ns") for d in dsts) / len(dsts)


def _design(accel: AcceleratorConfig) -> _Design:
    """The bandwidths and fixed latencies of ``accel`` that the estimate uses."""
    from ..hw.noc import DRAM_NODE, GBUF_NODE
    cyc = accel.cycle_ns
    tile, dram, noc, gbuf = accel.tile, accel.dram, accel.noc, accel.global_buffer

    def route(src: str, to_tiles: bool) -> float:
        if noc is None:
            return 0.0
        return _mean_route_ns(noc, accel.num_tiles, gbuf is not None, dram.bandwidth_bytes_per_s, src, to_tiles)

    inf = float("inf")
    to_tile = route(DRAM_NODE, True)
    stage = hop = 0.0
    if gbuf is not None:
        stage = dram.latency_ns + route(DRAM_NODE, False) + gbuf.latency_cycles * cyc
        hop = (gbuf.latency_cycles + tile.activation_buffer.latency_cycles) * cyc + route(GBUF_NODE, True)
    return _Design(
        cycle_ns=cyc, num_tiles=accel.num_tiles,
        dram_bytes_per_ns=dram.bandwidth_bytes_per_s * dram.bandwidth_efficiency * 1e-9,
        dram_link_bytes_per_ns=(noc.dram_link_bandwidth_bytes_per_s or dram.bandwidth_bytes_per_s) * 1e-9
        if noc is not None else inf,
        channel_bytes_per_ns=dram.channel_bandwidth_bytes_per_s * 1e-9, channels=dram.channels,
        interleave=dram.interleave_bytes,
        link_bytes_per_ns=noc.link_bandwidth_bytes_per_s * 1e-9 if noc is not None else inf,
        gbuf_bytes_per_cycle=gbuf.bytes_per_cycle if gbuf is not None else 0,
        weight_ns=dram.latency_ns + to_tile + tile.weight_buffer.latency_cycles * cyc,
        activation_ns=dram.latency_ns + to_tile + tile.activation_buffer.latency_cycles * cyc,
        stage_ns=stage, hop_ns=hop,
        store_ns=dram.latency_ns + to_tile + tile.output_buffer.latency_cycles * cyc)


def _dram_ns(d: _Design, nbytes: int) -> float:
    """Time (ns) one transfer alone occupies the DRAM: its largest share of one channel."""
    if nbytes <= 0:
        return 0.0
    share = min(nbytes, ceil(ceil(nbytes / d.interleave) / d.channels) * d.interleave)
    return share / d.channel_bytes_per_ns


def _port_ns(d: _Design, nbytes: int, bytes_per_cycle: int) -> float:
    return ceil(nbytes / bytes_per_cycle) * d.cycle_ns if nbytes > 0 else 0.0


def _traffic(spec: GemmSpec, d: _Design, order: LoopOrder, tm: int, tn: int, tk: int,
             shared: bool) -> tuple[int, float, float, float]:
    """DRAM bytes of a tiling as :func:`plan_gemm` lays it out, and how often operands are loaded.

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
        T = d.num_tiles
        w_loads = a_loads = w_edges = a_edges = 0
        for t in range(T):
            lo, hi = (blocks * t) // T, (blocks * (t + 1)) // T
            if hi > lo:  # the runs [lo, hi) touches, and how many of them use the edge tile
                w_lo, w_hi, a_lo, a_hi = lo // w_run, -(-hi // w_run), lo // a_run, -(-hi // a_run)
                w_loads += w_hi - w_lo
                a_loads += a_hi - a_lo
                w_edges += _periodic(w_lo, w_hi, w_edge_runs[0], w_edge_runs[1], 1)
                a_edges += _periodic(a_lo, a_hi, a_edge_runs[0], a_edge_runs[1], 1)
        w_traffic = (w_loads - w_edges) * w_full + w_edges * w_edge
        a_deliveries = (a_loads - a_edges) * a_full + a_edges * a_edge
    traffic = ceil(w_traffic + (a_total if shared else a_deliveries)) + spec.batch * spec.output_bytes(spec.m, spec.n)
    return traffic, a_deliveries, w_loads / blocks, a_loads / blocks


def _periodic(lo: int, hi: int, period: int, start: int, length: int) -> int:
    """How many ``x`` in ``[lo, hi)`` have ``start <= x % period < start + length``."""
    full_hi, rest_hi = divmod(hi, period)
    full_lo, rest_lo = divmod(lo, period)
    return ((full_hi - full_lo) * length + min(max(rest_hi - start, 0), length)
            - min(max(rest_lo - start, 0), length))


def _edge_blocks(order: LoopOrder, lo: int, hi: int, nb_i: int, nb_j: int) -> tuple[int, int, int]:
    """Of output blocks ``[lo, hi)`` in :func:`plan_gemm`'s enumeration: how many are in the last
    row block, in the last column block, and in both."""
    per = nb_i * nb_j
    if order is LoopOrder.M_OUTER:  # block = (b nb_i + i) nb_j + j
        last_i = _periodic(lo, hi, per, (nb_i - 1) * nb_j, nb_j)
        last_j = _periodic(lo, hi, nb_j, nb_j - 1, 1)
    else:  # block = (b nb_j + j) nb_i + i
        last_i = _periodic(lo, hi, nb_i, nb_i - 1, 1)
        last_j = _periodic(lo, hi, per, (nb_j - 1) * nb_i, nb_i)
    return last_i, last_j, _periodic(lo, hi, per, per - 1, 1)


def _estimate(spec: GemmSpec, accel: AcceleratorConfig, d: _Design, rate: Fraction, dataflow: Dataflow,
              order: LoopOrder, tm: int, tn: int, tk: int, shared: bool,
              cycles: dict | None = None) -> tuple[float, int, int]:
    """(estimated time s, tile steps, DRAM bytes) of a tiling, following how the tiles run it.

    A tile's loader keeps one load in flight and prefetches into the free half of each buffer,
    so a tile step takes the longest of its array time, its dequant time and its loads (fixed
    latencies plus the bytes over the slowest port on the way, alone on the DRAM). An activation
    tile that no other tile has asked for yet is first staged from DRAM into the global buffer;
    the tiles sharing a row block start their K loops at spread-out positions
    (:func:`_k_rotation`), so each stages only its share. The output blocks are split over the
    tiles as :func:`plan_gemm` does (``q`` or ``q + 1`` blocks each, edge blocks smaller): the
    estimate is the larger of the busiest tile's own time and a two-phase account of the DRAM
    (while all tiles work, then while those with an extra block finish it, each phase taking
    the longer of the tiles' pace and the sustained DRAM bandwidth for its share of the traffic),
    bounded below by the global buffer's port and links and the DRAM's interconnect port; the
    last step's array time and its output store follow.
    """
    tile = accel.tile
    cyc = d.cycle_ns
    cycles = {} if cycles is None else cycles
    nb_i, nb_j, nk = ceil(spec.m / tm), ceil(spec.n / tn), ceil(spec.k / tk)
    blocks = spec.batch * nb_i * nb_j
    T = d.num_tiles
    traffic, a_deliveries, w_frac, a_frac = _traffic(spec, d, order, tm, tn, tk, shared)
    tm, tn = min(tm, spec.m), min(tn, spec.n)
    m_edge, n_edge = spec.m - (nb_i - 1) * tm, spec.n - (nb_j - 1) * tn
    k_full, k_edge = min(tk, spec.k), spec.k - (nk - 1) * tk
    # tiles that work on the same row block at once, and the fraction of its first block's
    # activation tiles a tile stages itself (the others find them staged)
    sharing = max(1, min(nb_j, T // (spec.batch * nb_i)))
    own_share = max(1 / sharing, 1 / nk)

    def cost(m: int, n: int, k: int, first_k: bool) -> _StepCost:
        key = (dataflow, m, n, k, first_k)
        if key not in cycles:
            cycles[key] = _step_cycles(spec, accel, rate, dataflow, m, n, k, True, first_k)
        return cycles[key]

    def loads(m: int, n: int, k: int) -> tuple[float, float, float]:
        """(weight load, activation load from the global buffer, activation load staged from DRAM) ns."""
        w_bytes, a_bytes = spec.weight_bytes(k, n), spec.activation_bytes(m, k)
        w_ns = d.weight_ns + max(_port_ns(d, w_bytes, tile.weight_buffer.bytes_per_cycle),
                                 w_bytes / d.link_bytes_per_ns, w_bytes / d.dram_link_bytes_per_ns,
                                 _dram_ns(d, w_bytes))
        a_port = _port_ns(d, a_bytes, tile.activation_buffer.bytes_per_cycle)
        if shared:
            gbuf = _port_ns(d, a_bytes, d.gbuf_bytes_per_cycle)
            hop = d.hop_ns + max(gbuf, a_bytes / d.link_bytes_per_ns, a_port)
            staged = d.stage_ns + max(_dram_ns(d, a_bytes), a_bytes / d.dram_link_bytes_per_ns, gbuf) + hop
        else:
            hop = staged = d.activation_ns + max(a_port, a_bytes / d.link_bytes_per_ns,
                                                 a_bytes / d.dram_link_bytes_per_ns, _dram_ns(d, a_bytes))
        return w_ns, hop, staged

    def store_ns(m: int, n: int) -> float:
        o_bytes = spec.output_bytes(m, n)
        return d.store_ns + max(_port_ns(d, o_bytes, tile.output_buffer.bytes_per_cycle), o_bytes / d.link_bytes_per_ns,
                                o_bytes / d.dram_link_bytes_per_ns, _dram_ns(d, o_bytes))

    def block_ns(m: int, n: int, staged_share: float) -> float:
        """One output block's K steps on a tile; ``staged_share`` of its activation loads are staged."""
        total = slack = 0.0
        for k, first_k, count in ((k_full if nk > 1 else k_edge, True, 1), (k_full, False, nk - 2),
                                  (k_edge, False, 1 if nk > 1 else 0)):
            if count <= 0:
                continue
            c = cost(m, n, k, first_k)
            w_ns, hop, staged = loads(m, n, k)
            array, dequant = c.compute * cyc, c.dequant * cyc
            load = max(w_ns * w_frac, hop * a_frac)
            if not shared:  # both operands come through the same DRAM channels
                load = max(load, d.weight_ns + _dram_ns(d, ceil(spec.weight_bytes(k, n) * w_frac
                                                                + spec.activation_bytes(m, k) * a_frac)))
            period = max(load, array, dequant)
            if staged_share:
                period += staged_share * (max(w_ns * w_frac, staged * a_frac, array, dequant) - period)
            total += count * period
            slack = max(0.0, load - array)
        if not tile.output_buffer.double_buffered:
            # the next block's first step waits for this block's output to be stored
            total += max(0.0, store_ns(m, n) - slack)
        return total

    sizes = {(a, b): block_ns(a, b, 0.0) for a in {tm, m_edge} for b in {tn, n_edge}}

    def tile_ns(lo: int, hi: int) -> float:
        """Own time of the blocks ``[lo, hi)`` on one tile, activations found staged."""
        last_i, last_j, both = _edge_blocks(order, lo, hi, nb_i, nb_j)
        return ((hi - lo - last_i - last_j + both) * sizes[tm, tn] + (last_i - both) * sizes[m_edge, tn]
                + (last_j - both) * sizes[tm, n_edge] + both * sizes[m_edge, n_edge])

    # the first block also stages its share of the activation tiles
    first_extra = block_ns(tm, tn, own_share) - sizes[tm, tn]
    w_first, _, staged_first = loads(tm, tn, k_full)
    a_first = spec.activation_bytes(tm, k_full)
    # the tiles start together: the first steps' distinct activation tiles are staged one after
    # another into the global buffer and delivered one after another out of it (without one,
    # every tile's first loads share the DRAM)
    spans = [((blocks * t) // T, (blocks * (t + 1)) // T) for t in range(T)]
    spans = [(lo, hi) for lo, hi in spans if hi > lo]
    if shared:
        rows = {_first_row(order, lo, nb_i, nb_j) for lo, _ in spans}
        gbuf_rate = min(d.link_bytes_per_ns, d.gbuf_bytes_per_cycle / cyc)
        wave = max(len(rows) * a_first / min(gbuf_rate, d.dram_bytes_per_ns), len(spans) * a_first / gbuf_rate)
    else:
        wave = len(spans) * (a_first + spec.weight_bytes(k_full, tn)) / d.dram_bytes_per_ns
    wave = max(0.0, wave - max(staged_first, w_first))  # beyond the first load's own time
    start = wave + first_extra
    busiest = start + max(tile_ns(lo, hi) for lo, hi in spans)
    mean_block = tile_ns(0, blocks) / blocks
    q, extra = divmod(blocks, T)
    # the busy tiles' last output stores are the tail's
    traffic_before_tail = traffic - len(spans) * spec.output_bytes(tm, tn)
    phases = []  # (pace of the busy tiles ns, DRAM bytes of the phase)
    if q:
        phases.append((start + q * mean_block, traffic_before_tail * q * T / blocks))
    if extra:
        phases.append((mean_block + (0.0 if q else start), traffic_before_tail * extra / blocks))
    total = 0.0
    dram_bound = False
    for own, nbytes in phases:
        dram = nbytes / d.dram_bytes_per_ns
        dram_bound |= dram > own
        total += max(own, dram)
    last = cost(tm, tn, k_full, nk == 1)  # (the K slice a tile runs last depends on its rotation)
    tail = max(last.compute, last.dequant) * cyc + store_ns(tm, tn) + (d.weight_ns if dram_bound else 0.0)
    bound = traffic / d.dram_link_bytes_per_ns
    if shared:  # staging writes and deliveries share the global buffer's port; each has its link
        a_staged = spec.batch * spec.activation_bytes(spec.m, spec.k)
        bound = max(bound, _port_ns(d, ceil(a_deliveries + a_staged), d.gbuf_bytes_per_cycle),
                    a_deliveries / d.link_bytes_per_ns, a_staged / d.link_bytes_per_ns)
    return max(max(total, busiest) + tail, bound) * 1e-9, blocks * nk, traffic


def _first_row(order: LoopOrder, block: int, nb_i: int, nb_j: int) -> tuple[int, int]:
    """(instance, row block) of output block number ``block`` in :func:`plan_gemm`'s enumeration."""
    if order is LoopOrder.M_OUTER:
        return divmod(block // nb_j, nb_i)
    return block // (nb_i * nb_j), block % nb_i


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def choose_tiling(spec: GemmSpec, accel: AcceleratorConfig) -> tuple[GemmTiling, Fraction]:
    """Pick tile sizes, loop order and dataflow (see :func:`_choose_tiling`; memoised, a pure function)."""
    return _choose_tiling(spec, accel)


@lru_cache(maxsize=4096)
def _choose_tiling(spec: GemmSpec, accel: AcceleratorConfig) -> tuple[GemmTiling, Fraction]:
    """Pick tile sizes, loop order and dataflow minimising the estimated time (:func:`_estimate`).

    Candidates: for each K tile, the largest row tile that fits the activation slot and a
    few halvings of it, and column tiles of powers of two times the array width and of the
    widths that cut N into about one, two, three or four blocks per compute tile (so that
    every tile gets work in as even shares as the array width allows). Among tilings within
    ``TIME_SLACK`` of the fastest estimate, the one with the least DRAM traffic wins (then
    the one with fewer steps, then the faster).

    Raises
    ------
    MappingError
        If no tile fits the buffers, or the PE cannot multiply these operands.
    """
    tile = accel.tile
    arr = tile.pe_array
    rate = pe_model(arr.pe).macs_per_cycle(spec.weight_bits, spec.activation_bits, spec.activation_format)
    a_slot = tile.activation_buffer.slot_bytes
    if accel.global_buffer is not None:
        a_slot = min(a_slot, accel.global_buffer.slot_bytes)
    w_slot, o_slot = tile.weight_buffer.slot_bytes, tile.output_buffer.slot_bytes
    shared = accel.global_buffer is not None
    d = _design(accel)
    T = accel.num_tiles
    tn_pow2 = sorted({min(spec.n, c) for c in _pow2_upto(spec.n, arr.cols)}
                     | {min(spec.n, _round_up(ceil(spec.n / T), arr.cols))})
    tm_cands = _pow2_upto(spec.m)
    cands: list[tuple] = []
    seen: set = set()
    cycles: dict = {}
    for tk in _k_candidates(spec):
        tm_max = _fit_largest(tm_cands, lambda tm: spec.activation_bytes(tm, tk) <= a_slot)
        tn_max = _fit_largest(tn_pow2, lambda tn: spec.weight_bytes(tk, tn) <= w_slot)
        if tm_max is None or tn_max is None:
            continue
        tms = [tm_max] + [tm_max >> s for s in (1, 2) if (tm_max >> s) >= arr.rows]
        for tm0 in tms:
            nb_i = ceil(spec.m / tm0)
            tns = {tn for tn in tn_pow2 if tn <= tn_max}
            for per_tile in (1, 2, 3, 4):
                target = per_tile * T // (spec.batch * nb_i)
                if target >= 1:
                    tn = min(spec.n, _round_up(ceil(spec.n / target), arr.cols))
                    if spec.weight_bytes(tk, tn) <= w_slot:
                        tns.add(tn)
            for tn in sorted(tns):
                tm = tm0
                while tm > 1 and ceil(tm * tn * tile.accumulator_bits / 8) > o_slot:
                    tm = max(1, tm // 2)
                if ceil(tm * tn * tile.accumulator_bits / 8) > o_slot or (tm, tn, tk) in seen:
                    continue
                seen.add((tm, tn, tk))
                # with several K steps every step reloads both operands in either order: same estimate
                orders = list(LoopOrder) if ceil(spec.k / tk) == 1 else [LoopOrder.M_OUTER]
                for order in orders:
                    for df in arr.dataflows:
                        est, steps, traffic = _estimate(spec, accel, d, rate, df, order, tm, tn, tk, shared, cycles)
                        cands.append((est, traffic, steps, order.value, df.value,
                                      GemmTiling(tm, tn, tk, order, df, est)))
    best = None
    if cands:
        # within TIME_SLACK of the fastest estimate: least DRAM traffic (energy), then fewer steps
        # (simulation speed), then time
        limit = min(c[0] for c in cands) * (1 + TIME_SLACK)
        best = min(((c[1], c[2], c[0], c[3], c[4], c[5].tm, c[5].tn, c[5].tk), c[5])
                   for c in cands if c[0] <= limit)
    if best is None:
        kmin = min(spec.k, spec.group_size or 16)
        checks = [("activation_buffer", a_slot, spec.activation_bytes(1, kmin)),
                  ("weight_buffer", w_slot, spec.weight_bytes(kmin, 1)),
                  ("output_buffer", o_slot, ceil(tile.accumulator_bits / 8))]
        if accel.global_buffer is not None and accel.global_buffer.slot_bytes < checks[0][2]:
            checks.insert(0, ("global_buffer", accel.global_buffer.slot_bytes, checks[0][2]))
        name, slot, need = next(((n, s, need) for n, s, need in checks if s < need),
                                ("activation_buffer", a_slot, checks[0][2]))
        field = name if name == "global_buffer" else f"tile.{name}"
        raise MappingError(
            f"field '{field}.capacity_bytes': no tile of GEMM m={spec.m} n={spec.n} k={spec.k} fits "
            f"(a slot holds {slot} B, the smallest tile needs {need} B)")
    return best[1], rate


def plan_gemm(spec: GemmSpec, accel: AcceleratorConfig, tiling: GemmTiling | None = None) -> GemmPlan:
    """Map ``spec`` onto ``accel``: the tiling and each compute tile's steps.

    Output blocks ``(inst, i, j)`` are enumerated in the loop order and split
    into ``num_tiles`` contiguous, near-equal shares; each block runs its K
    steps back to back and writes its output after the last. Each tile starts
    its blocks' K loops at its own K slice (:func:`_k_rotation`) and wraps
    around, so tiles working on the same row block at the same time ask for
    different activation tiles.
    """
    if tiling is None:
        tiling, rate = choose_tiling(spec, accel)
    else:
        rate = pe_model(accel.tile.pe_array.pe).macs_per_cycle(
            spec.weight_bits, spec.activation_bits, spec.activation_format)
    tm, tn, tk = tiling.tm, tiling.tn, tiling.tk
    nb_i, nb_j, nk = ceil(spec.m / tm), ceil(spec.n / tn), ceil(spec.k / tk)
    if tiling.order is LoopOrder.M_OUTER:
        blocks = [(b, i, j) for b in range(spec.batch) for i in range(nb_i) for j in range(nb_j)]
    else:
        blocks = [(b, i, j) for b in range(spec.batch) for j in range(nb_j) for i in range(nb_i)]
    a_full, w_full = spec.activation_bytes(tm, tk), spec.weight_bytes(tk, tn)
    a_base = 0
    w_base = _align(spec.batch * nb_i * nk * a_full)
    o_base = w_base + _align(spec.batch * nb_j * nk * w_full)
    o_full = spec.output_bytes(tm, tn)
    T = accel.num_tiles
    cache: dict = {}
    per_tile: list[tuple[TileStep, ...]] = []
    for t in range(T):
        lo, hi = (len(blocks) * t) // T, (len(blocks) * (t + 1)) // T
        steps: list[TileStep] = []
        prev_a = prev_w = None
        rotation = _k_rotation(t, nk)
        for b, i, j in blocks[lo:hi]:
            m = min(tm, spec.m - i * tm)
            n = min(tn, spec.n - j * tn)
            for pos in range(nk):
                kk = (pos + rotation) % nk
                k = min(tk, spec.k - kk * tk)
                a_key, w_key = (b, i, kk), (b, j, kk)
                load_a, load_w = a_key != prev_a, w_key != prev_w
                prev_a, prev_w = a_key, w_key
                ck = (m, n, k, load_a, pos == 0)
                if ck not in cache:
                    cache[ck] = _step_cycles(spec, accel, rate, tiling.dataflow, *ck)
                c = cache[ck]
                a_bytes = spec.activation_bytes(m, k) if load_a else 0
                w_bytes = spec.weight_bytes(k, n) if load_w else 0
                last = pos == nk - 1
                steps.append(TileStep(
                    index=len(steps), inst=b, i=i, j=j, kk=pos, k_slice=kk, m=m, n=n, k=k,
                    a_key=a_key if load_a else None, a_bytes=a_bytes,
                    a_addr=a_base + ((b * nb_i + i) * nk + kk) * a_full,
                    w_key=w_key if load_w else None, w_bytes=w_bytes,
                    w_addr=w_base + ((b * nb_j + j) * nk + kk) * w_full,
                    compute_cycles=c.compute, array_cycles=c.array, dequant_cycles=c.dequant,
                    sram_read_bytes=c.sram_read + (spec.output_bytes(m, n) if last else 0),
                    sram_write_bytes=c.sram_write + a_bytes + w_bytes,
                    store_bytes=spec.output_bytes(m, n) if last else 0,
                    store_addr=o_base + ((b * nb_i + i) * nb_j + j) * o_full,
                    macs=m * n * k, dequant_elements=c.dequant_elements, convert_cycles=c.convert,
                    convert_stall_cycles=c.convert_stall, a_sram_read_bytes=c.a_reads,
                    w_sram_read_bytes=c.w_reads))
        per_tile.append(tuple(steps))
    return GemmPlan(spec=spec, tiling=tiling, steps=tuple(per_tile), rate=rate)


#: 1 / golden ratio: multiples of it modulo 1 spread evenly however many are taken
_GOLDEN = (5 ** 0.5 - 1) / 2


def _k_rotation(tile: int, nk: int) -> int:
    """The K slice at which tile ``tile`` starts each output block's ``nk`` K steps.

    The starts follow the golden-ratio sequence, so any run of consecutive tiles (the tiles
    that share a row block) starts at nearly evenly spread K slices: each activation tile is
    first asked for, and staged from DRAM, by about one tile while the others find it staged.
    The order of the K steps only changes the order of the partial sums.
    """
    return int((tile * _GOLDEN) % 1.0 * nk)


def _align(nbytes: int) -> int:
    return ceil(nbytes / _ALIGN_BYTES) * _ALIGN_BYTES


def peak_macs_per_s(spec: GemmSpec, accel: AcceleratorConfig) -> float:
    """Peak MAC rate of the whole design for this GEMM's operand widths (MACs/s)."""
    rate = pe_model(accel.tile.pe_array.pe).macs_per_cycle(spec.weight_bits, spec.activation_bits,
                                                           spec.activation_format)
    return accel.num_pes * float(rate) * accel.frequency_hz
