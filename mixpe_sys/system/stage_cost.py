"""What one pass of a micro-batch through one pipeline stage costs on one of the stage's chips.

A decoder layer on a tensor-parallel chip is three compute segments split by
the two all-reduces (after the row-parallel ``o_proj`` and ``ffn_down``)::

    A: norm_attn, qkv, attention (per sequence), o_proj  -> all-reduce
    B: residual_attn, norm_ffn, ffn_up, act, ffn_down    -> all-reduce
    C: residual_ffn

The last stage adds the head (final norm, vocabulary-parallel LM head) and
an all-gather of the logits. Every op's cost comes from the chip's
:class:`~mixpe_sys.sim.engine.CostCache` (``Op.cost_key``), so identical
ops on every chip, layer and pass are simulated once. :class:`RunStageCosts`
builds the ops as a one-chip model run does (attention batched over the
micro-batch's sequences); :class:`ServingStageCosts` as a serving iteration
does (attention per sequence, shapes padded, optionally interpolated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..hw.config import AcceleratorConfig
from ..serving.config import CostModel, ServingConfig
from ..serving.interpolation import AnchorGrid, Cost, Interpolator, exact_cost
from ..serving.iteration_cost import bucket
from ..serving.iteration_ops import IterationOps, SeqWork
from ..sim.engine import CostCache
from ..workload.ops import Op, Phase
from ..workload.quant import QuantScheme
from ..workload.transformer import STREAM_BITS, head_ops, layer_ops
from .parallel import Stage

SEGMENT_ENDS = ("o_proj", "ffn_down")
"""The row-parallel GEMMs after which an all-reduce runs."""


@dataclass(frozen=True, slots=True)
class StagePass:
    """One micro-batch's pass through one stage, per chip of the stage (times ns, energy J, bytes).

    ``segments`` are the compute times of one layer between its collectives
    (``A``, ``B``, ``C``); every layer of the stage is the same.
    """

    num_layers: int
    segments: tuple[float, float, float]
    head_ns: float
    all_reduce_bytes: float  # each of the two per layer
    all_gather_bytes: float  # logits after the head (0: none)
    activation_bytes: float  # sent to each chip of the next stage (0 on the last stage)
    energy_j: float  # one chip's compute energy for the pass
    op_times_ns: tuple[tuple[str, float], ...]  # (op name, time of the pass on one chip)

    @property
    def compute_ns(self) -> float:
        """Compute time of the pass on one chip (no collectives)."""
        return self.num_layers * sum(self.segments) + self.head_ns


def _split(ops: Sequence[Op]) -> tuple[list[Op], list[Op], list[Op]]:
    names = [op.name for op in ops]
    a_end, b_end = names.index(SEGMENT_ENDS[0]) + 1, names.index(SEGMENT_ENDS[1]) + 1
    return list(ops[:a_end]), list(ops[a_end:b_end]), list(ops[b_end:])


def _op_times(layer_parts: Sequence[Sequence[Op]], layers: int, head: Sequence[Op],
              cache: CostCache) -> tuple[tuple[str, float], ...]:
    """Per op name, its time in the pass on one chip (ns), from the exact op costs."""
    out: dict[str, float] = {}
    for ops in layer_parts:
        for op in ops:
            out[op.name] = out.get(op.name, 0.0) + layers * cache.cost(op).time_ns
    for op in head:
        out[op.name] = out.get(op.name, 0.0) + cache.cost(op).time_ns
    return tuple(out.items())


def _pass(stage: Stage, tp: int, parts: tuple[Cost, Cost, Cost], head: Cost, tokens: int, emitting: int,
          op_times: tuple) -> StagePass:
    h = stage.shard.hidden_size
    full_vocab = stage.shard.vocab_size * tp
    return StagePass(num_layers=stage.num_layers, segments=tuple(p.time_ns for p in parts), head_ns=head.time_ns,
                     all_reduce_bytes=tokens * h * STREAM_BITS / 8 if tp > 1 else 0.0,
                     all_gather_bytes=emitting * full_vocab * STREAM_BITS / 8 if tp > 1 and stage.last else 0.0,
                     activation_bytes=0.0 if stage.last else tokens * h * STREAM_BITS / 8,
                     energy_j=stage.num_layers * sum(p.energy_j for p in parts) + head.energy_j,
                     op_times_ns=op_times)


class RunStageCosts:
    """Stage passes of a model run: ``b`` sequences of ``q`` new tokens attending to ``kv_len`` tokens."""

    def __init__(self, stages: Sequence[Stage], tp: int, design: AcceleratorConfig, quant: QuantScheme,
                 cache: CostCache):
        self.stages, self.tp, self.design, self.quant, self.cache = stages, tp, design, quant, cache
        self._memo: dict[tuple, StagePass] = {}

    def ops(self, stage: Stage, batch: int, q: int, kv_len: int, phase: Phase) -> tuple[list[Op], list[Op]]:
        """(one layer's ops, head ops) of the pass on one chip."""
        layer = layer_ops(stage.shard, self.quant, batch=batch, q_tokens=q, kv_len=kv_len, phase=phase,
                          layer=stage.first_layer)
        head = head_ops(stage.shard, self.quant, batch=batch, phase=phase) if stage.last else []
        return layer, head

    def stage_pass(self, stage: Stage, batch: int, q: int, kv_len: int, phase: Phase) -> StagePass:
        """The pass of ``batch`` sequences through ``stage``."""
        key = (stage.index, batch, q, kv_len, phase)
        hit = self._memo.get(key)
        if hit is None:
            layer, head = self.ops(stage, batch, q, kv_len, phase)
            split = _split(layer)
            parts = tuple(exact_cost(seg, self.cache) for seg in split)
            hc = exact_cost(head, self.cache)
            times = _op_times(split, stage.num_layers, head, self.cache)
            hit = _pass(stage, self.tp, parts, hc, batch * q, batch if head else 0, times)
            self._memo[key] = hit
        return hit


class ServingStageCosts:
    """Stage passes of serving iterations: a group of sequence works, shapes padded as the serving cost model
    pads them, large sizes interpolated with :attr:`CostModel.INTERPOLATED`."""

    def __init__(self, stages: Sequence[Stage], tp: int, design: AcceleratorConfig, quant: QuantScheme,
                 config: ServingConfig, cache: CostCache):
        self.stages, self.tp, self.design, self.quant, self.config, self.cache = (stages, tp, design, quant, config,
                                                                                 cache)
        # every stage's share has the same widths and vocabulary (only its layer count differs), so the
        # ops of a layer and of the head are the same on every stage
        self._ops = IterationOps(stages[0].shard, quant, attention=config.attention)
        self._interp = None
        if config.cost_model is CostModel.INTERPOLATED:
            self._interp = Interpolator(design, cache, AnchorGrid(config.exact_tokens, config.anchors_per_octave))
        self._parts: dict[tuple, Cost] = {}  # token ops and sequence ops are the same on every stage
        self._heads: dict[int, Cost] = {}

    def _family(self, family: str, sizes: tuple[int, ...], build) -> Cost:
        key = (family, sizes)
        hit = self._parts.get(key)
        if hit is None:
            hit = exact_cost(build(*sizes), self.cache) if self._interp is None else \
                self._interp.cost(family, sizes, build)
            self._parts[key] = hit
        return hit

    def _prefetch(self, tokens: int, shapes, emitting: int, seg) -> None:
        """Simulate the uncached ops of a pass's uncosted parts together, on the cache's workers."""
        ops: list[Op] = []

        def points(sizes: tuple[int, ...]) -> list[tuple[int, ...]]:
            # the sizes themselves, or the anchors the interpolator will simulate around them
            return [sizes] if self._interp is None else [pt for pt, _ in self._interp.grid.corners(sizes)]

        for i in range(4):
            if (f"tok{i}", (tokens,)) not in self._parts:
                for (t,) in points((tokens,)):
                    ops += seg(i)(t)
        for shape in set(shapes):
            if ("sequence", shape) not in self._parts:
                for pt in points(shape):
                    ops += self._ops.sequence_ops(*pt)
        if emitting and emitting not in self._heads:
            ops += self._ops.head_ops(emitting)
        self.cache.prefetch(ops)

    def padded(self, works: Sequence[SeqWork]) -> tuple[int, list[tuple[int, int]], int]:
        """(padded tokens, padded (q, kv_len) per sequence, sequences emitting a token)."""
        per = self.config.shape_buckets
        tokens = sum(w.q for w in works)
        shapes = [(bucket(w.q, per), max(bucket(w.q, per), bucket(w.kv_len, per))) if per else (w.q, w.kv_len)
                  for w in works]
        return bucket(tokens, per), shapes, sum(1 for w in works if w.emits)

    def stage_pass(self, stage: Stage, works: Sequence[SeqWork]) -> StagePass:
        """The pass of the sequence works ``works`` through ``stage``."""
        ops = self._ops
        tokens, shapes, emitting = self.padded(works)

        def seg(i: int):
            def build(t: int) -> list[Op]:
                before, after = ops.token_ops(t)
                return [before, after[:1], after[1:6], after[6:]][i]
            return build

        if self.cache.workers > 1:
            self._prefetch(tokens, shapes, emitting if stage.last else 0, seg)
        tok = [self._family(f"tok{i}", (tokens,), seg(i)) for i in range(4)]
        seqs = Cost(0.0, 0.0)
        for shape in shapes:
            seqs = seqs + self._family("sequence", shape, ops.sequence_ops)
        parts = (tok[0] + seqs + tok[1], tok[2], tok[3])
        hc = Cost(0.0, 0.0)
        if stage.last and emitting:
            hc = self._heads.get(emitting)
            if hc is None:  # the head is always simulated exactly, as in the one-chip serving cost model
                hc = self._heads[emitting] = exact_cost(ops.head_ops(emitting), self.cache)
        return _pass(stage, self.tp, parts, hc, tokens, emitting if stage.last else 0, ())
