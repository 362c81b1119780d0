"""The op records of an engine run, held as distinct ops and costs plus per-block indices.

A model run repeats a few distinct ops many times (identical decoder layers,
the same linear layers in every decode step). :class:`OpTable` keeps each
distinct op identity (name, kind, shape) and each distinct cost once and, per
:class:`~mixpe_sys.workload.ops.OpBlock`, which of them it runs and how many
layers it repeats. The per-op DataFrame and the per-layer and per-phase
reports are built from it on request, with numpy gathers instead of one Python
object per op, and equal, value for value and dtype for dtype, to the frames
built row by row: every sum a report takes runs over the same values in the
same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..metrics.records import COST_COLUMNS, OP_IDENTITY_COLUMNS, OpCost, cost_row
from ..report import SUM_COLUMNS, layers_report, phases_report
from ..workload.ops import OpBlock

#: The op-record columns of a run: which op it is, then its cost (one schema, :mod:`mixpe_sys.metrics.records`).
OP_COLUMNS = OP_IDENTITY_COLUMNS + COST_COLUMNS
#: Identity columns that come from the op itself (not its place in the run).
SHAPE_COLUMNS = ("name", "kind", "m", "n", "k", "batch", "elements")
#: The columns :func:`~mixpe_sys.report.phases_report` reads.
PHASE_REPORT_COLUMNS = ("phase", "step", "time_s", "roofline_bound", "bottleneck", *SUM_COLUMNS)


@dataclass(frozen=True)
class BlockIndex:
    """One block of a run: its labels and, per op of its first copy, the identity and cost indices."""

    phase: str
    step: int
    layers: int  # copies of the block
    op_layers: np.ndarray  # layer label of each op of the first copy
    shapes: np.ndarray  # index into the table's distinct identities, per op of one copy
    costs: np.ndarray  # index into the table's distinct costs, per op of one copy

    @property
    def size(self) -> int:
        """Ops in the block (all copies)."""
        return len(self.costs) * self.layers


class OpTable:
    """The op records of a run, built block by block (:meth:`add`); frames on request, each built once."""

    def __init__(self) -> None:
        self.blocks: list[BlockIndex] = []
        self.costs: list[OpCost] = []
        self._cost_index: dict[tuple, int] = {}
        self._shapes: list[tuple] = []
        self._shape_index: dict[tuple, int] = {}
        self._ops: pd.DataFrame | None = None
        self._layers: pd.DataFrame | None = None
        self._phases: pd.DataFrame | None = None
        self._per_op: tuple | None = None
        self._costs: pd.DataFrame | None = None

    def add(self, block: OpBlock, keyed_costs: list[tuple[tuple, OpCost]]) -> None:
        """Append ``block``; ``keyed_costs`` is (cost key, cost) for each op of its first copy."""
        if not block.ops or block.layers < 1:
            return
        shapes, costs = [], []
        for op, (key, cost) in zip(block.ops, keyed_costs, strict=True):
            shape = (op.name, op.kind.value, op.m, op.n, op.k, op.batch, op.elements)
            si = self._shape_index.get(shape)
            if si is None:
                si = self._shape_index[shape] = len(self._shapes)
                self._shapes.append(shape)
            ci = self._cost_index.get(key)
            if ci is None:
                ci = self._cost_index[key] = len(self.costs)
                self.costs.append(cost)
            shapes.append(si)
            costs.append(ci)
        first = block.ops[0]
        self.blocks.append(BlockIndex(phase=first.phase.value, step=first.step, layers=block.layers,
                                      op_layers=np.array([op.layer for op in block.ops], dtype=np.int64),
                                      shapes=np.array(shapes, dtype=np.int64), costs=np.array(costs, dtype=np.int64)))
        self._ops = self._layers = self._phases = self._per_op = self._costs = None

    def __len__(self) -> int:
        """Ops in the run."""
        return sum(b.size for b in self.blocks)

    # ------------------------------------------------------------------ per-op arrays

    def _arrays(self) -> tuple:
        """Per op: phase (index into :attr:`phases`), step, layer, identity index, cost index (numpy arrays)."""
        if self._per_op is None:
            phase, step, layer, shape, cost = [], [], [], [], []
            codes = {p: i for i, p in enumerate(self.phases)}
            for b in self.blocks:
                n = b.size
                phase.append(np.full(n, codes[b.phase], dtype=np.int64))
                step.append(np.full(n, b.step, dtype=np.int64))
                copies = np.repeat(np.arange(b.layers, dtype=np.int64), len(b.costs))
                layer.append(np.tile(b.op_layers, b.layers) + copies)
                shape.append(np.tile(b.shapes, b.layers))
                cost.append(np.tile(b.costs, b.layers))
            self._per_op = tuple(np.concatenate(a) for a in (phase, step, layer, shape, cost))
        return self._per_op

    @property
    def phases(self) -> list[str]:
        """The phase labels of the run, in order of first appearance."""
        return list(dict.fromkeys(b.phase for b in self.blocks))

    def _cost_values(self, field: str) -> np.ndarray:
        """``field`` of every distinct cost, as a float array."""
        return np.array([getattr(c, field) for c in self.costs], dtype=np.float64)

    def device_time_ns(self) -> float:
        """The ops' device times added one after the other in program order (ns)."""
        if not self.blocks:
            return 0.0
        per_op = self._cost_values("device_time_ns")[self._arrays()[4]]
        return float(np.cumsum(per_op)[-1])

    # ------------------------------------------------------------------ frames

    def ops_frame(self) -> pd.DataFrame:
        """One row per op in program order (columns :data:`OP_COLUMNS`; times in s from the run's start)."""
        if self._ops is None:
            self._ops = self.frame(OP_COLUMNS)
        return self._ops

    def frame(self, columns) -> pd.DataFrame:
        """The columns of :meth:`ops_frame` named in ``columns`` (in :data:`OP_COLUMNS` order), built alone."""
        wanted = [c for c in OP_COLUMNS if c in set(columns)]
        if self._ops is not None:
            return self._ops[wanted]
        if not self.blocks:
            return pd.DataFrame([], columns=list(OP_COLUMNS))[wanted]
        phase, step, layer, shape, cost = self._arrays()
        # the distinct values as small frames, so that each column gets the dtype a row-by-row frame would
        # infer; each column is then gathered by index, keeping that dtype
        shapes = pd.DataFrame(self._shapes, columns=list(SHAPE_COLUMNS))
        costs = self._costs_frame()
        cols = {}
        for c in wanted:
            if c == "op_index":
                cols[c] = np.arange(len(cost), dtype=np.int64)
            elif c == "phase":
                cols[c] = _gather(pd.DataFrame({"phase": self.phases})["phase"], phase)
            elif c == "step":
                cols[c] = step
            elif c == "layer":
                cols[c] = layer
            elif c in ("start_s", "end_s"):
                end_ns = np.cumsum(self._cost_values("time_ns")[cost])  # the sum of times so far, op by op
                cols[c] = (end_ns if c == "end_s" else np.concatenate(([0.0], end_ns[:-1]))) * 1e-9
            elif c in SHAPE_COLUMNS:
                cols[c] = _gather(shapes[c], shape)
            else:
                cols[c] = _gather(costs[c], cost)
        return pd.DataFrame(cols, columns=wanted)

    def _costs_frame(self) -> pd.DataFrame:
        """One row per distinct cost (columns :data:`~mixpe_sys.metrics.records.COST_COLUMNS`)."""
        if self._costs is None:
            self._costs = pd.DataFrame([cost_row(c) for c in self.costs], columns=list(COST_COLUMNS))
        return self._costs

    def total(self, column: str):
        """The sum of a cost column over every op: exactly ``ops_frame()[column].sum()``, without the frame
        (integers: count x value per distinct cost; floats: pandas' sum over the op-ordered values)."""
        costs = self._costs_frame()[column]
        index = self._arrays()[4] if self.blocks else np.zeros(0, dtype=np.int64)
        if pd.api.types.is_integer_dtype(costs.dtype):
            counts = np.bincount(index, minlength=len(costs))
            return sum(int(n) * int(v) for n, v in zip(counts, costs.to_numpy()))
        return pd.Series(costs.to_numpy()[index], dtype=costs.dtype).sum()

    def steps(self, phase: str) -> int:
        """Distinct steps with ops in ``phase``."""
        return len({b.step for b in self.blocks if b.phase == phase})

    def phases_frame(self) -> pd.DataFrame:
        """:func:`~mixpe_sys.report.phases_report` of the run."""
        if self._phases is None:
            self._phases = phases_report(self.frame(PHASE_REPORT_COLUMNS))
        return self._phases

    def layers_frame(self) -> pd.DataFrame:
        """:func:`~mixpe_sys.report.layers_report` of the run.

        Every copy of a block has the same costs in the same order, so the
        report's figures of one copy stand for all of them: the report is
        taken over one copy of each distinct block and repeated, with each
        layer's own labels, start, end and op count.
        """
        if self._layers is None:
            self._layers = self._build_layers()
        return self._layers

    def _one_group_per_copy(self) -> bool:
        """True when every block copy is one whole (phase, step, layer) group, no group split over blocks."""
        spans: dict[tuple, list[tuple[int, int]]] = {}
        for b in self.blocks:
            if (b.op_layers != b.op_layers[0]).any():
                return False
            first = int(b.op_layers[0])
            spans.setdefault((b.phase, b.step), []).append((first, first + b.layers))
        for ranges in spans.values():
            ranges.sort()
            if any(lo < prev_hi for (_, prev_hi), (lo, _) in zip(ranges, ranges[1:])):
                return False
        return True

    def _build_layers(self) -> pd.DataFrame:
        if not self.blocks or not self._one_group_per_copy():
            return layers_report(self.ops_frame())
        ops = self.ops_frame()
        start, end = ops["start_s"].to_numpy(), ops["end_s"].to_numpy()
        phase_code = {p: i for i, p in enumerate(self.phases)}
        signature_of: dict[tuple, int] = {}
        representative: list[int] = []  # row of the first op of each distinct signature's first copy
        group_signature, group_phase, group_step, group_layer, group_size = [], [], [], [], []
        row = 0
        for b in self.blocks:
            sig = tuple(b.costs.tolist())
            si = signature_of.get(sig)
            if si is None:
                si = signature_of[sig] = len(representative)
                representative.append(row)
            n = len(b.costs)
            group_signature.append(np.full(b.layers, si, dtype=np.int64))
            group_phase.append(np.full(b.layers, phase_code[b.phase], dtype=np.int64))
            group_step.append(np.full(b.layers, b.step, dtype=np.int64))
            group_layer.append(int(b.op_layers[0]) + np.arange(b.layers, dtype=np.int64))
            group_size.append(np.full(b.layers, n, dtype=np.int64))
            row += b.size
        sizes = np.concatenate(group_size)
        offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        rows = np.concatenate([np.arange(r, r + n) for r, n in zip(representative, _signature_sizes(signature_of))])
        one_each = layers_report(ops.iloc[rows])
        out = one_each.iloc[np.concatenate(group_signature)].reset_index(drop=True)
        out["phase"] = _gather(pd.Series(self.phases), np.concatenate(group_phase))
        out["step"] = np.concatenate(group_step)
        out["layer"] = np.concatenate(group_layer)
        out["start_s"] = np.minimum.reduceat(start, offsets)
        out["end_s"] = np.maximum.reduceat(end, offsets)
        out["ops"] = sizes
        return out


def _gather(values: pd.Series, index: np.ndarray):
    """``values`` at positions ``index``, in ``values``' own dtype (an extension array for strings)."""
    return values.array.take(index) if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) \
        else values.to_numpy()[index]


def _signature_sizes(signature_of: dict[tuple, int]) -> list[int]:
    """Op count of each signature, in signature-index order."""
    sizes = [0] * len(signature_of)
    for sig, i in signature_of.items():
        sizes[i] = len(sig)
    return sizes
