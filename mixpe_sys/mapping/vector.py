"""Mapping a vector op (softmax, norm, activation, residual, KV write) onto the tiles' vector units.

The elements are cut into chunks that fit one slot of the activation buffer
(input) and of the output buffer (output), at most ``ceil(elements / tiles)``
each so every tile gets work; each chunk is one tile step: load, compute
``ceil(elements x ops_per_element / lanes) + latency`` cycles, store.
"""

from __future__ import annotations

from math import ceil

from ..errors import MappingError
from ..hw.config import AcceleratorConfig, Dataflow
from ..hw.plan import GemmPlan, GemmTiling, LoopOrder, TileStep
from ..workload.ops import Op


def plan_vector(op: Op, accel: AcceleratorConfig) -> GemmPlan:
    """Tile steps of a vector op, split over the compute tiles."""
    tile = accel.tile
    if op.elements <= 0:
        raise MappingError(f"field 'elements': vector op '{op.name}' needs elements > 0, got {op.elements}")
    rd = op.read_bytes / op.elements  # bytes per element
    wr = op.write_bytes / op.elements
    limit = min(tile.activation_buffer.slot_bytes / rd if rd else float("inf"),
                tile.output_buffer.slot_bytes / wr if wr else float("inf"))
    if limit < 1:
        raise MappingError("field 'tile.activation_buffer.capacity_bytes': one element of vector op "
                           f"'{op.name}' does not fit a buffer slot")
    chunk = max(1, min(int(limit), ceil(op.elements / accel.num_tiles)))
    n_chunks = ceil(op.elements / chunk)
    per_tile = []
    for t in range(accel.num_tiles):
        lo, hi = (n_chunks * t) // accel.num_tiles, (n_chunks * (t + 1)) // accel.num_tiles
        steps = []
        for c in range(lo, hi):
            elems = min(chunk, op.elements - c * chunk)
            a_bytes = ceil(elems * rd)
            o_bytes = ceil(elems * wr)
            steps.append(TileStep(
                index=len(steps), inst=0, i=c, j=0, kk=0, m=elems, n=1, k=0,
                a_key=("vec", c), a_bytes=a_bytes, a_addr=ceil(c * chunk * rd),
                w_key=None, w_bytes=0, w_addr=0,
                store_bytes=o_bytes, store_addr=(1 << 40) + ceil(c * chunk * wr)))
        per_tile.append(tuple(steps))
    tiling = GemmTiling(tm=chunk, tn=1, tk=0, order=LoopOrder.M_OUTER, dataflow=Dataflow.OUTPUT_STATIONARY,
                        estimated_time_s=0.0)
    return GemmPlan(spec=None, tiling=tiling, steps=tuple(per_tile), share_activations=False,
                    vector_ops_per_element=op.ops_per_element)
