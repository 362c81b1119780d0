"""The whole accelerator assembled from one :class:`AcceleratorConfig`."""

from __future__ import annotations

import dataclasses

import simpy

from .plan import GemmPlan
from ..metrics.recorder import Recorder
from .config import AcceleratorConfig, Topology
from .dma import Dma
from .dram import Dram, row_activation_ns
from .noc import Interconnect
from .sram import SramBuffer
from .steady_state import SteadyState, worth_watching
from .tile import ComputeTile
from .tile_step import plan_timer


class Accelerator:
    """DRAM, optional global buffer and interconnect, and the compute tiles.

    Parameters
    ----------
    env:
        The SimPy environment.
    config:
        The design.
    recorder:
        Receives every component's records.
    """

    def __init__(self, env: simpy.Environment, config: AcceleratorConfig, recorder: Recorder):
        self.env = env
        self.config = config
        self.recorder = recorder
        cycle_ns = config.cycle_ns
        self.dram = Dram(env, config.dram, recorder)
        self.global_buffer = (SramBuffer(env, config.global_buffer, recorder, "global_buffer", cycle_ns)
                              if config.global_buffer is not None else None)
        self.noc = None
        if config.noc is not None:
            self.noc = Interconnect(env, config.noc, recorder, num_tiles=config.num_tiles,
                                    has_gbuf=self.global_buffer is not None,
                                    dram_bandwidth_bytes_per_s=config.dram.bandwidth_bytes_per_s)
        self.dma = Dma(env, self.dram, self.noc, self.global_buffer)
        self.tiles = [ComputeTile(env, config.tile, recorder, index=t, cycle_ns=cycle_ns, dma=self.dma)
                      for t in range(config.num_tiles)]
        self.steady_state: SteadyState | None = None  # the fast-forward of the last GEMM started with one

    @property
    def shared_activations(self) -> bool:
        """True when activation tiles are staged once in the global buffer for all tiles."""
        return self.global_buffer is not None

    def start_gemm(self, op_id: int, plan: GemmPlan, fast_forward: bool = False) -> simpy.Event:
        """Run every tile's share of ``plan`` (and, if the plan has a second phase, ``plan.then``
        after the first has drained) from now; return an event fired when all is done.

        The shared units serve the tiles' requests in a static order (:mod:`.tile`): round-robin
        over the tiles, each taking its next request in turn, so the run is worked out request by
        request (:meth:`run_gemm`) and the event only marks its end.
        """
        end = self.env.now
        while plan is not None:
            end = self.run_gemm(op_id, dataclasses.replace(plan, then=None), fast_forward, end)
            plan = plan.then
        return self.env.timeout(end - self.env.now)

    def run_gemm(self, op_id: int, plan: GemmPlan, fast_forward: bool = False, start_ns: float = 0.0) -> float:
        """Run one phase of ``plan`` on idle tiles from ``start_ns``; return when its last step is done (ns).

        ``fast_forward`` skips whole repeated periods of the run (:mod:`.steady_state`; runs too
        short to look for them, and designs with DRAM row-buffer timing, are run in full): every
        time, counter and record comes out as without it, bit for bit.
        """
        share = self.shared_activations and plan.share_activations
        timer = plan_timer(plan, self.config)
        watch = SteadyState(self.dram, self.dma, self.fifo_servers(), self.buffers(),
                            self.recorder) if fast_forward and worth_watching(plan, self.config) else None
        pipes = [tile.run_gemm(op_id, plan, steps, timer, share, watch, start_ns)
                 for tile, steps in zip(self.tiles, plan.steps) if steps]
        if watch is not None:
            watch.attach(pipes)
            self.steady_state = watch
        live = pipes
        while live:
            live = [p for p in live if p.turn()]
        if watch is not None:
            watch.detach()
        return max((p.finish_ns for p in pipes), default=start_ns)

    def buffers(self) -> list[SramBuffer]:
        """Every SRAM buffer: each tile's weight, activation and output buffer, then the global buffer."""
        out = [b for t in self.tiles for b in (t.weight_buffer, t.activation_buffer, t.output_buffer)]
        return out + ([self.global_buffer] if self.global_buffer is not None else [])

    def fifo_servers(self) -> list:
        """Every FIFO server: DRAM channels, interconnect links, SRAM DMA ports."""
        links = self.noc.servers() if self.noc is not None else []
        return [*self.dram.channels, *links, *(b.port for b in self.buffers())]


def drained(plan: GemmPlan, config: AcceleratorConfig, fast_forward: bool = False) -> Accelerator:
    """A fresh accelerator that recorded no step rows, after running ``plan`` from idle until it drained
    (its ``env.now`` is the device time, ns; its counters and busy times are the run's; ``fast_forward``:
    see :meth:`Accelerator.run_gemm`, the same figures either way). The tiles let go of their
    pipelines, so the plan's steps are not kept."""
    env = simpy.Environment()
    accel = Accelerator(env, config, Recorder(steps=False))
    env.run(until=accel.start_gemm(0, plan, fast_forward))
    for tile in accel.tiles:
        tile.pipeline = None
    return accel


def plan_time_ns(plan: GemmPlan, config: AcceleratorConfig) -> float:
    """Device time (ns) of ``plan`` on a fresh accelerator, idle to drained: the simulation itself,
    without records."""
    return drained(plan, config).env.now


def plan_time_lower_bound_ns(plan: GemmPlan, config: AcceleratorConfig) -> float:
    """A time (ns) that :func:`plan_time_ns` of ``plan`` can never undercut, without simulating it.

    The largest of, for each tile (:mod:`.tile`): its loader runs one load at a time and each load
    takes at least the fixed latencies on its way (DRAM, buffers; interconnect hops left out), so the
    loads of its steps in turn, then the last step's array time, and its weight (activation) loads
    in turn, each also its bytes through the slowest server on its way alone, then the same; its array runs the steps one after
    another, each no shorter than its step cost, after the first load; either way followed by the
    last output store's latencies; and its loads' bytes through its interconnect link and its buffers'
    DMA ports, then the last step's array time and the store. And for the DRAM: the plan's DRAM bytes
    over the peak bandwidth of all channels (or of the DRAM's interconnect port), with one row
    activation for every row the operands and the output occupy, plus one latency. The mapper skips simulating a tiling whose bound is above the
    fastest run it has (:mod:`mixpe_sys.mapping.tiling`).

    Of a plan in two phases (``plan.then``) the bound is the first phase's, without the row
    activations (the output's rows are opened by the second).
    """
    timer = plan_timer(plan, config)
    tiles = [([s.w_key is not None for s in steps], [s.a_key is not None for s in steps],
              [timer.step(s).compute_cycles for s in steps], sum(s.w_bytes for s in steps),
              sum(s.a_bytes for s in steps)) for steps in plan.steps if steps]
    reads, writes = plan.dram_bytes(config.global_buffer is not None)
    spec = plan.spec if plan.then is None else None
    return steps_time_lower_bound_ns(config, spec, plan.share_activations, tiles, reads, writes,
                                     plan.keeps_partials)


def steps_time_lower_bound_ns(config: AcceleratorConfig, spec, share_activations: bool, tiles, reads: int,
                              writes: int, kept_stores: bool = False) -> float:
    """:func:`plan_time_lower_bound_ns` of a plan given by what the bound reads of it.

    Parameters
    ----------
    config:
        The design.
    spec:
        The plan's GEMM (None for a vector op).
    share_activations:
        The plan's ``share_activations``.
    tiles:
        For each tile with steps: ``(weight loads, activation loads, cycles, weight bytes, activation
        bytes)``: whether each step loads a weight tile and an activation tile, each step's cost in
        cycles (``compute_cycles`` of its :class:`~mixpe_sys.metrics.records.StepCost`), in step
        order, and the bytes of its steps' loads.
    reads, writes:
        The plan's DRAM bytes (``GemmPlan.dram_bytes`` with a global buffer when the design has one).
    kept_stores:
        True when some stores go to the global buffer instead (``TileStep.store_key``).
    """
    cyc, tile, dram = config.cycle_ns, config.tile, config.dram
    gbuf = config.global_buffer if share_activations else None
    w_ns = dram.latency_ns + tile.weight_buffer.latency_cycles * cyc
    # a shared activation tile may be staged already: only its copy out of the global buffer is certain
    a_ns = (gbuf.latency_cycles * cyc if gbuf is not None else dram.latency_ns) + tile.activation_buffer.latency_cycles * cyc
    store_ns = dram.latency_ns + tile.output_buffer.latency_cycles * cyc
    if kept_stores and gbuf is not None:
        store_ns = min(dram.latency_ns, gbuf.latency_cycles * cyc) + tile.output_buffer.latency_cycles * cyc
    # bytes/ns of the FIFO servers every load of a tile passes: its interconnect link, its buffers' DMA ports
    # (on a ring a tile has two links, and so has the DRAM)
    one_link = config.noc is not None and config.noc.topology is not Topology.RING
    link = config.noc.link_bandwidth_bytes_per_s * 1e-9 if one_link else float("inf")
    w_port, a_port = (b.bytes_per_cycle / cyc for b in (tile.weight_buffer, tile.activation_buffer))
    # a step's load: the longer of its loads' fixed latencies (0 without a load)
    load_ns = {(w, a): max(w_ns if w else 0.0, a_ns if a else 0.0) for w in (False, True) for a in (False, True)}
    dram_rate = dram.channel_bandwidth_bytes_per_s * dram.channels * 1e-9
    if one_link:  # the DRAM's interconnect port
        dram_rate = min(dram_rate, (config.noc.dram_link_bandwidth_bytes_per_s or dram.bandwidth_bytes_per_s) * 1e-9)
    # the slowest server a weight (activation) load passes, alone on it: bytes/ns
    w_rate = min(link, w_port, dram_rate)
    a_rate = min(link, a_port, gbuf.bytes_per_cycle / cyc if gbuf is not None else dram_rate)
    bound = 0.0
    for w_new, a_new, cycles, w_bytes, a_bytes in tiles:
        loads = [load_ns[key] for key in zip(w_new, a_new)]
        array = [c * cyc for c in cycles]
        served = max((w_bytes + a_bytes) / link, w_bytes / w_port, a_bytes / a_port)
        # one load at a time: each weight (activation) load its fixed latencies and its bytes' time
        serial = max(sum(w_new) * w_ns + w_bytes / w_rate, sum(a_new) * a_ns + a_bytes / a_rate)
        bound = max(bound, max(sum(loads) + array[-1], loads[0] + sum(array), served + array[-1],
                               serial + array[-1]) + store_ns)
    dram_ns = (reads + writes) / dram_rate
    if dram.row_buffer is not None and spec is not None:
        # every DRAM row the operands and the output occupy is opened at least once (all start closed)
        rows = int(0.99 * sum(spec.compulsory_bytes()) / dram.row_buffer.row_bytes)
        dram_ns = max(dram_ns, ((reads + writes) * 1e9 / dram.channel_bandwidth_bytes_per_s
                                + rows * row_activation_ns(dram)) / dram.channels)
    bound = max(bound, dram_ns + dram.latency_ns)
    return bound * (1 - 1e-12)  # (less a part in 1e12, for the rounding of the simulation's own sums)
