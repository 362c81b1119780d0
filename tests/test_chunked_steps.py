"""A large plan's steps made on demand (mapping.chunked_steps) are the steps an eager layout makes,
and runs of either come out the same."""

from __future__ import annotations

import pytest

import mixpe_sys.mapping.layout as layout
from mixpe_sys import load_design
from mixpe_sys.hw.accelerator import drained
from mixpe_sys.hw.plan import GemmTiling, LoopOrder
from mixpe_sys.hw.config import Dataflow
import mixpe_sys.mapping.chunked_steps as chunked_steps
from mixpe_sys.mapping.chunked_steps import ChunkedSteps
from mixpe_sys.workload.gemm_spec import GemmSpec

SPEC = GemmSpec(m=300, n=700, k=2100, weight_bits=4, activation_bits=8, output_bits=8, group_size=128)


def plans(design, tiling):
    """(eager, lazy) layouts of SPEC under ``tiling``; the lazy one in chunks of about 40 steps, two kept
    (so that a tile's steps take many chunks, made again and again)."""
    eager = layout.lay_out(SPEC, design, tiling)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layout, "LAZY_STEPS", 0)
        mp.setattr(chunked_steps, "CHUNK_STEPS", 40)
        mp.setattr(chunked_steps, "CHUNKS_KEPT", 2)
        lazy = layout.lay_out(SPEC, design, tiling)
    return eager, lazy


@pytest.mark.parametrize("order", list(LoopOrder))
@pytest.mark.parametrize("tk", [128, 2100])  # many K steps per block, and one (loads shared by neighbours)
def test_lazy_steps_are_the_eager_steps(order, tk):
    design = load_design("mixpe-w4a8")
    tiling = GemmTiling(tm=64, tn=64, tk=tk, order=order, dataflow=Dataflow.OUTPUT_STATIONARY,
                        estimated_time_s=0.0, tiles=3)
    eager, lazy = plans(design, tiling)
    assert all(isinstance(s, ChunkedSteps) for s in lazy.steps[:3])
    for e, z in zip(eager.steps, lazy.steps):
        assert len(z) == len(e)
        assert list(z) == list(e)  # iteration
        assert [z[i] for i in range(len(z))] == list(e)  # indexing, chunk by chunk
        assert [z[i] for i in reversed(range(len(z)))] == list(reversed(e))  # chunks made again
    t0 = lazy.steps[0]
    assert t0[-1] == eager.steps[0][-1] and t0[2:7] == list(eager.steps[0][2:7])
    with pytest.raises(IndexError):
        t0[len(t0)]


def test_lazy_plans_run_as_eager_ones():
    design = load_design("mixpe-w4a8")
    tiling = GemmTiling(tm=64, tn=128, tk=128, order=LoopOrder.M_OUTER, dataflow=Dataflow.WEIGHT_STREAMING,
                        estimated_time_s=0.0, tiles=2)
    eager, lazy = plans(design, tiling)
    assert len(lazy.steps[0]) > 5 * 40  # five chunks a tile and more
    a, b = drained(eager, design), drained(lazy, design)
    assert a.env.now == b.env.now
    assert [(s.busy_ns, s.served_bytes) for s in a.fifo_servers()] == \
        [(s.busy_ns, s.served_bytes) for s in b.fifo_servers()]
    assert [(t.busy_cycles, t.counts) for t in a.tiles] == [(t.busy_cycles, t.counts) for t in b.tiles]
    assert lazy.dram_bytes(True) == eager.dram_bytes(True)
