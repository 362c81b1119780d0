"""Tiling a GEMM onto an accelerator: tile sizes, loop order, dataflow, tile steps.

A GEMM is ``batch`` independent products ``[M, K] x [K, N] -> [M, N]``
(activations x weights). The mapper picks tile sizes ``(tm, tn, tk)`` that fit
one slot of each buffer, a loop order, and a dataflow, by estimating the time
of each candidate (the larger of DRAM traffic over bandwidth and array cycles
over the clock); it then cuts the GEMM into :class:`TileStep` s and hands each
compute tile a contiguous share of the output blocks. Pure functions only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction
from math import ceil
from typing import Iterator, NamedTuple

from ..errors import MappingError
from ..hw.config import AcceleratorConfig, Dataflow, DequantPlacement
from ..hw.pe import pe_model
from ..workload.quant import NumberFormat
from .dataflow import array_cycles

_ALIGN_BYTES = 4096
#: the mapper accepts a tiling this much slower (estimated) than the fastest if it moves fewer DRAM bytes
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
    kk: int
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


def _estimate(spec, accel, rate, dataflow, order, tm, tn, tk, shared) -> tuple[float, int, int]:
    nb_i, nb_j, nk = ceil(spec.m / tm), ceil(spec.n / tn), ceil(spec.k / tk)
    units = spec.batch * nb_i * nb_j
    per_tile = ceil(units / accel.num_tiles)
    cyc = _step_cycles(spec, accel, rate, dataflow, min(tm, spec.m), min(tn, spec.n), min(tk, spec.k), True,
                       True).compute
    compute_s = per_tile * nk * cyc / accel.frequency_hz
    a_total = spec.batch * spec.activation_bytes(spec.m, spec.k)
    w_total = spec.batch * spec.weight_bytes(spec.k, spec.n)
    a_copies = 1 if shared else min(accel.num_tiles, max(1, nb_j))
    if order is LoopOrder.M_OUTER:
        a_traffic = a_total * (a_copies if nk == 1 else nb_j)
        w_traffic = w_total * nb_i
    else:
        a_traffic = a_total * (nb_j if not shared or nk > 1 else max(1, nb_j // accel.num_tiles))
        w_traffic = w_total * (1 if nk == 1 else nb_i)
    traffic = a_traffic + w_traffic + spec.batch * spec.output_bytes(spec.m, spec.n)
    mem_s = traffic / (accel.dram.bandwidth_bytes_per_s * accel.dram.bandwidth_efficiency)
    return max(compute_s, mem_s, _on_chip_s(spec, accel, order, nb_i, nb_j, nk, a_total, w_traffic, shared)), \
        units * nk, traffic


def _on_chip_s(spec, accel, order, nb_i, nb_j, nk, a_total, w_traffic, shared) -> float:
    """Lower bound (s) from delivering operand tiles to the compute tiles over the interconnect:
    each busy tile's link carries its share, and with a global buffer every activation delivery
    leaves through the buffer's one port. A tile reloads its activation tile whenever the
    (instance, row block, K step) changes between consecutive steps."""
    if accel.noc is None:
        return 0.0
    T = accel.num_tiles
    if nk > 1 or (order is LoopOrder.N_OUTER and nb_i * spec.batch > 1):
        a_deliveries = a_total * nb_j
    elif order is LoopOrder.N_OUTER:
        a_deliveries = a_total * min(nb_j, T)  # each tile loads the one row block once
    else:
        a_deliveries = a_total * min(nb_j, 1 + T / (spec.batch * nb_i))
    link = accel.noc.link_bandwidth_bytes_per_s
    busy_tiles = min(T, spec.batch * nb_i * nb_j)  # output blocks are what the tiles share
    link_s = (a_deliveries + w_traffic) / busy_tiles / link
    port_s = 0.0
    if shared:
        gbuf = accel.global_buffer
        port_s = a_deliveries / min(link, gbuf.bytes_per_cycle * accel.frequency_hz)
    return max(link_s, port_s)


def choose_tiling(spec: GemmSpec, accel: AcceleratorConfig) -> tuple[GemmTiling, Fraction]:
    """Pick tile sizes, loop order and dataflow minimising the estimated time.

    Among tilings within ``TIME_SLACK`` of the fastest estimate, the one with
    the least DRAM traffic wins (then the faster, then the one with fewer steps).

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
    n_share = ceil(spec.n / accel.num_tiles)
    tn_cands = sorted({min(spec.n, c) for c in _pow2_upto(spec.n, arr.cols)}
                      | {min(spec.n, ceil(n_share / arr.cols) * arr.cols)})
    tm_cands = _pow2_upto(spec.m)
    cands: list[tuple] = []
    for tk in _k_candidates(spec):
        tm_max = _fit_largest(tm_cands, lambda tm: spec.activation_bytes(tm, tk) <= a_slot)
        tn_max = _fit_largest(tn_cands, lambda tn: spec.weight_bytes(tk, tn) <= w_slot)
        if tm_max is None or tn_max is None:
            continue
        for tn in {tn_max, min(tn_max, tn_cands[-1] if spec.m > arr.rows else tn_max),
                   min(tn_max, ceil(n_share / arr.cols) * arr.cols)}:
            tm = tm_max
            while tm > 1 and ceil(tm * tn * tile.accumulator_bits / 8) > o_slot:
                tm = max(1, tm // 2)
            if ceil(tm * tn * tile.accumulator_bits / 8) > o_slot:
                continue
            for order in LoopOrder:
                for df in arr.dataflows:
                    est, steps, traffic = _estimate(spec, accel, rate, df, order, tm, tn, tk, shared)
                    cands.append((est, traffic, steps, order.value, df.value, GemmTiling(tm, tn, tk, order, df, est)))
    best = None
    if cands:
        # within TIME_SLACK of the fastest estimate: least DRAM traffic (energy), then time, then
        # fewer steps (simulation speed)
        limit = min(c[0] for c in cands) * (1 + TIME_SLACK)
        best = min(((c[1], c[0], c[2], c[3], c[4], c[5].tm, c[5].tn, c[5].tk), c[5])
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
    steps back to back and writes its output after the last.
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
        for b, i, j in blocks[lo:hi]:
            m = min(tm, spec.m - i * tm)
            n = min(tn, spec.n - j * tn)
            for kk in range(nk):
                k = min(tk, spec.k - kk * tk)
                a_key, w_key = (b, i, kk), (b, j, kk)
                load_a, load_w = a_key != prev_a, w_key != prev_w
                prev_a, prev_w = a_key, w_key
                ck = (m, n, k, load_a, kk == 0)
                if ck not in cache:
                    cache[ck] = _step_cycles(spec, accel, rate, tiling.dataflow, *ck)
                c = cache[ck]
                a_bytes = spec.activation_bytes(m, k) if load_a else 0
                w_bytes = spec.weight_bytes(k, n) if load_w else 0
                last = kk == nk - 1
                steps.append(TileStep(
                    index=len(steps), inst=b, i=i, j=j, kk=kk, m=m, n=n, k=k,
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


def _align(nbytes: int) -> int:
    return ceil(nbytes / _ALIGN_BYTES) * _ALIGN_BYTES


def peak_macs_per_s(spec: GemmSpec, accel: AcceleratorConfig) -> float:
    """Peak MAC rate of the whole design for this GEMM's operand widths (MACs/s)."""
    rate = pe_model(accel.tile.pe_array.pe).macs_per_cycle(spec.weight_bits, spec.activation_bits,
                                                           spec.activation_format)
    return accel.num_pes * float(rate) * accel.frequency_hz
