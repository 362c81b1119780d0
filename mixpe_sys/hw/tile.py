"""A compute tile: PE array, weight/activation/output buffers, dequant unit, and the
processes that pipeline a GEMM's tile steps through them.

Four SimPy processes run per GEMM: the loader prefetches the next step's
operands into the free half of each double-buffered buffer while the array
computes the current one; the array computes; the dequant unit scales each
step's per-group partial sums (MixPE, post-GEMM); the writeback engine stores
finished output tiles. Each stage waits on the next through bounded queues,
so a slow stage stalls the ones before it.
"""

from __future__ import annotations

import simpy

from ..mapping.gemm import TileStep
from ..metrics.recorder import Recorder, StepRecord
from .config import TileConfig
from .dma import Dma
from .sram import SramBuffer


class ComputeTile:
    """One compute tile.

    Parameters
    ----------
    env:
        The SimPy environment.
    config:
        The tile's PE array, buffers and units.
    recorder:
        Receives one :class:`StepRecord` per tile step.
    index:
        The tile's number (its interconnect node is ``tile{index}``).
    cycle_ns:
        Core clock period (ns).
    dma:
        The DMA engine shared by all tiles.
    """

    def __init__(self, env, config: TileConfig, recorder: Recorder, *, index: int, cycle_ns: float, dma: Dma):
        self.env = env
        self.config = config
        self.recorder = recorder
        self.index = index
        self.cycle_ns = cycle_ns
        self.dma = dma
        name = f"tile{index}"
        self.weight_buffer = SramBuffer(env, config.weight_buffer, recorder, f"{name}.weight", cycle_ns)
        self.activation_buffer = SramBuffer(env, config.activation_buffer, recorder, f"{name}.activation", cycle_ns)
        self.output_buffer = SramBuffer(env, config.output_buffer, recorder, f"{name}.output", cycle_ns)
        self.busy_cycles = 0
        self.dequant_busy_cycles = 0

    def run_gemm(self, op_id: int, steps: tuple[TileStep, ...], shared_activations: bool) -> simpy.Event:
        """Start the processes for ``steps``; return an event that fires when all are done."""
        env = self.env
        in_slots = 2 if (self.config.weight_buffer.double_buffered
                         and self.config.activation_buffer.double_buffered) else 1
        out_slots = 2 if self.config.output_buffer.double_buffered else 1
        ready = simpy.Store(env)
        free_in = simpy.Container(env, capacity=in_slots, init=in_slots)
        free_out = simpy.Container(env, capacity=out_slots, init=out_slots)
        use_dequant = any(s.dequant_cycles for s in steps)
        dq_queue = simpy.Store(env, capacity=1) if use_dequant else None
        wb_queue = simpy.Store(env)
        stores = sum(1 for s in steps if s.store_bytes)
        procs = [env.process(self._loader(steps, ready, free_in, shared_activations)),
                 env.process(self._array(op_id, steps, ready, free_in, free_out, dq_queue, wb_queue)),
                 env.process(self._writeback(op_id, stores, wb_queue, free_out))]
        if use_dequant:
            procs.append(env.process(self._dequant(op_id, len(steps), dq_queue, wb_queue)))
        return simpy.AllOf(env, procs)

    def _loader(self, steps, ready, free_in, shared):
        env, dma = self.env, self.dma
        for s in steps:
            yield free_in.get(1)
            start = env.now
            done = start
            dram = 0
            if s.w_key is not None:
                done = dma.book_load(start, self.index, self.weight_buffer, s.w_addr, s.w_bytes)
                dram += s.w_bytes
            if s.a_key is not None:
                if shared:
                    dram += yield from dma.load_shared(self.index, self.activation_buffer, s.a_key,
                                                       s.a_addr, s.a_bytes)
                else:
                    done = max(done, dma.book_load(start, self.index, self.activation_buffer, s.a_addr, s.a_bytes))
                    dram += s.a_bytes
            if done > env.now:
                yield env.timeout(done - env.now)
            ready.put([s, start, env.now, dram, 0.0, 0.0, 0.0])

    def _array(self, op_id, steps, ready, free_in, free_out, dq_queue, wb_queue):
        env = self.env
        for s in steps:
            item = yield ready.get()
            if s.kk == 0:
                yield free_out.get(1)
            item[4] = env.now
            yield env.timeout(s.compute_cycles * self.cycle_ns)
            self.busy_cycles += s.compute_cycles
            item[5] = env.now
            free_in.put(1)
            if dq_queue is not None:
                wait = env.now
                yield dq_queue.put(item)
                item[6] = env.now - wait
            elif s.store_bytes:
                wb_queue.put(item)
            else:
                self._record(op_id, item, env.now, 0)

    def _dequant(self, op_id, count, dq_queue, wb_queue):
        env = self.env
        for _ in range(count):
            item = yield dq_queue.get()
            s = item[0]
            if s.dequant_cycles:
                yield env.timeout(s.dequant_cycles * self.cycle_ns)
                self.dequant_busy_cycles += s.dequant_cycles
            if s.store_bytes:
                wb_queue.put(item)
            else:
                self._record(op_id, item, env.now, 0)

    def _writeback(self, op_id, count, wb_queue, free_out):
        env = self.env
        for _ in range(count):
            item = yield wb_queue.get()
            s = item[0]
            done = self.dma.book_store(env.now, self.index, self.output_buffer, s.store_addr, s.store_bytes)
            yield env.timeout(done - env.now)
            free_out.put(1)
            self._record(op_id, item, env.now, s.store_bytes)

    def _record(self, op_id: int, item: list, done_ns: float, written: int) -> None:
        s, load_start, load_end, dram, c_start, c_end, stall = item
        self.recorder.step(StepRecord(
            op_id=op_id, tile=self.index, step=s.index, inst=s.inst, i=s.i, j=s.j, kk=s.kk,
            m=s.m, n=s.n, k=s.k, load_start_ns=load_start, load_end_ns=load_end,
            compute_start_ns=c_start, compute_end_ns=c_end, done_ns=done_ns, macs=s.macs,
            compute_cycles=s.compute_cycles, array_cycles=s.array_cycles, dequant_cycles=s.dequant_cycles,
            dequant_stall_ns=stall, dram_read_bytes=dram, dram_write_bytes=written,
            sram_read_bytes=s.sram_read_bytes, sram_write_bytes=s.sram_write_bytes))
