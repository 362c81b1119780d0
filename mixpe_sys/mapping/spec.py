"""What the mapper works on and what it produces: a GEMM's sizes and precisions
(:class:`GemmSpec`), the chosen tiling (:class:`GemmTiling`, :class:`LoopOrder`) and
the plan of tile steps each compute tile runs (:class:`TileStep`, :class:`GemmPlan`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from math import ceil
from fractions import Fraction
from typing import Iterator

from ..errors import MappingError
from ..hw.config import Dataflow
from ..workload.quant import NumberFormat


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
