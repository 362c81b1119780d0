"""The work a compute tile executes, as the mapper lays it out: geometry only.

A :class:`TileStep` names the operand tiles a step loads (shapes, bytes,
addresses), the output it writes and where it sits in its output block's K
loop; how long it takes is the hardware's business (:mod:`.tile_step`). A
:class:`GemmPlan` is one op's steps for every compute tile.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterator

from ..workload.attention import AttentionSpec
from ..workload.gemm_spec import GemmSpec
from .config import Dataflow


class LoopOrder(str, enum.Enum):
    """Order of the output-block loops."""

    M_OUTER = "m_outer"  # activation tile stays, weight tiles stream (weights reloaded per row block)
    N_OUTER = "n_outer"  # weight tile stays, activation tiles stream


@dataclass(slots=True)
class TileStep:
    """One step of a compute tile: load operand tiles, run the array, maybe write back.

    Byte counts are what this step moves; keys identify operand tiles so a
    tile already resident (or already staged in the global buffer) is not
    fetched twice. A vector-unit step has ``m`` elements, ``n = 1``, ``k = 0``.

    Read only once made (not ``frozen``: a frozen dataclass's ``__init__`` costs three times as
    much, and a large plan makes a hundred thousand steps).
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
    store_bytes: int  # output bytes written to DRAM after this step (0 unless last K step)
    store_addr: int
    k_slice: int = 0  # which K slice the step covers (rows k_slice * tk ... of the weights)
    masked: bool = False  # fused attention: the key block straddles the causal diagonal (masked in full)
    normalize: bool = False  # fused attention: the step divides the output by the row sums before storing it
    store_key: tuple | None = None  # split-K partial sums: kept in the global buffer under this key, not stored to DRAM

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the step."""
        return self.m * self.n * self.k


@dataclass(frozen=True)
class GemmTiling:
    """The chosen tile sizes, loop order and dataflow, and how many compute tiles share the output
    blocks (``tiles``: tiles ``0 .. tiles - 1``; 0 = all of the design's)."""

    tm: int
    tn: int
    tk: int
    order: LoopOrder
    dataflow: Dataflow
    estimated_time_s: float
    tiles: int = 0
    split_k: int = 1  # K ranges per output block, each a partial sum; a second phase adds them up

    def tile_steps(self, spec: GemmSpec) -> int:
        """Tile steps of ``spec`` under this tiling: one per output block and K slice, and with a
        K split one per output block and partial sum to add them up."""
        blocks = spec.batch * -(-spec.m // self.tm) * -(-spec.n // self.tn)
        return blocks * -(-spec.k // self.tk) + (blocks * self.split_k if self.split_k > 1 else 0)


@dataclass(frozen=True)
class GemmPlan:
    """A mapped GEMM: its tiling and the steps of each compute tile."""

    spec: GemmSpec | None  # None for vector ops
    tiling: GemmTiling
    steps: tuple[tuple[TileStep, ...], ...]  # [tile][step]
    share_activations: bool = True  # stage activation tiles once in the global buffer, if there is one
    vector_ops_per_element: int = 0  # vector-unit ops per element (vector plans; 0 for GEMMs)
    attention: AttentionSpec | None = None  # the fused attention these steps compute (None: GEMM or vector op)
    then: "GemmPlan | None" = None  # a second phase, started once every tile has finished this one

    def iter_steps(self) -> Iterator[tuple[int, TileStep]]:
        """(tile, step) for every step of every tile."""
        for t, steps in enumerate(self.steps):
            for s in steps:
                yield t, s

    @property
    def keeps_partials(self) -> bool:
        """True when some step of this phase keeps its partial sums in the global buffer (``store_key``)."""
        return self.tiling.split_k > 1 and any(s.store_key is not None for _, s in self.iter_steps())

    def tile_steps(self) -> int:
        """Steps of every tile, in this phase and the next (``then``)."""
        return sum(len(s) for s in self.steps) + (self.then.tile_steps() if self.then is not None else 0)

    def dram_bytes(self, shared_activations: bool) -> tuple[int, int]:
        """(read, write) DRAM bytes the steps of this phase and the next (``then``) request; with a
        global buffer each activation tile is read from DRAM once however many tiles use it, and
        partial sums kept in it (``store_key``) are neither written to DRAM nor read back."""
        reads = writes = 0
        seen: set = set()
        plan = self
        while plan is not None:
            shared = shared_activations and plan.share_activations
            for _, s in plan.iter_steps():
                reads += s.w_bytes
                if s.store_key is not None and shared:
                    seen.add(s.store_key)
                else:
                    writes += s.store_bytes
                if s.a_key is not None:
                    if not shared:
                        reads += s.a_bytes
                    elif s.a_key not in seen:
                        seen.add(s.a_key)
                        reads += s.a_bytes
            plan = plan.then
        return reads, writes
