"""A compute tile: PE array, weight/activation/output buffers, dequant unit, and the
pipeline that runs a GEMM's tile steps through them.

Four stages work on each step in turn: the loader prefetches the next step's
operands into the free half of each double-buffered buffer while the array
computes the current one; the array computes; the dequant unit scales each
step's per-group partial sums (MixPE, post-GEMM); the writeback engine stores
finished output tiles. The stages are coupled through bounded queues, so a
slow stage stalls the ones before it:

- the loader issues step ``i`` once it has finished loading step ``i-1`` and
  the array has released the input slot of step ``i - in_slots``;
- the array starts step ``i`` once its operands are loaded, it has handed
  step ``i-1`` on, and (first K step of an output tile) an output slot is free;
- the hand-off to the dequant unit waits while the unit's one-entry queue is
  full;
- the writeback engine stores output tiles in order; each store frees an
  output slot.

Only the loader's and the writeback engine's transfers touch shared units
(DRAM channels, links, the global buffer). Those serve their requests in a
static order, the order of the tiles' request sequences taken round-robin
(:class:`mixpe_sys.hw.accelerator.Accelerator`): each tile's sequence is its
loads in step order, a staged activation tile's copy out of the global buffer
right after its load (a request of its own, so that the other tiles' loads,
ready sooner, go before it), and the store of step ``j`` right after the load
of step ``j + in_slots`` (the earliest load that cannot need it). Every request
depends only on requests before it in that order, so the whole run is a
max-plus recurrence worked out request by request, with no event queue:
each finish is a max of earlier finishes plus service times, so no time can
grow when a service time shrinks (more bandwidth, a faster clock), unlike
first-come-first-served queueing, whose order changes with the timing
(Graham's scheduling anomalies; Baccelli et al., *Synchronization and
Linearity*, 1992, ch. 2).
"""

from __future__ import annotations

from array import array
from collections import deque

from ..metrics.recorder import BusyCounter, Recorder
from ..metrics.records import StepRecord
from .config import TileConfig
from .dma import Dma
from .plan import GemmPlan
from .sram import SramBuffer
from .steady_state import COPY, LOAD, STORE
from .tile_step import StepTimer


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
        self.weight_buffer = SramBuffer(env, config.weight_buffer, recorder, f"{name}.weight_buffer", cycle_ns)
        self.activation_buffer = SramBuffer(env, config.activation_buffer, recorder, f"{name}.activation_buffer",
                                            cycle_ns)
        self.output_buffer = SramBuffer(env, config.output_buffer, recorder, f"{name}.output_buffer", cycle_ns)
        # the units only this tile books, and the array-side ports of its buffers
        self.array = BusyCounter(f"{name}.array")
        self.vector = BusyCounter(f"{name}.vector")
        self.dequant = BusyCounter(f"{name}.dequant")
        self.ports = {b: BusyCounter(f"{name}.{b}_buffer.array_port") for b in ("activation", "weight", "output")}
        for unit in (self.array, self.vector, self.dequant, *self.ports.values()):
            recorder.add_unit(unit)
        self.busy_cycles = 0  # array or vector unit, SRAM-port and conversion waits included
        self.dequant_busy_cycles = 0  # post-GEMM scaling and in-loop conversion
        self.dequant_stall_ns = 0.0  # total time the array waited on the dequant unit or converter
        self.counts = [0] * 6  # array-side SRAM bytes: a read, w read, o read, o write; dequant elements; vector ops
        self.pipeline: _Pipeline | None = None  # the GEMM pipeline run_gemm started last

    def run_gemm(self, op_id: int, plan: GemmPlan, steps, timer: StepTimer, shared_activations: bool,
                 watch=None, start_ns: float = 0.0) -> "_Pipeline":
        """Set up the pipeline of this tile's ``steps`` of ``plan``, idle at ``start_ns``; return it
        (the accelerator takes its requests in turn, :meth:`_Pipeline.turn`). ``watch`` is the
        steady-state fast-forward (:class:`mixpe_sys.hw.steady_state.SteadyState`) that sees the
        pipeline's bookings, or None.

        Raises
        ------
        MappingError
            If an operand or output tile does not fit its buffer slot.
        """
        costs, most = self._costs(steps, timer)
        self._check_fits(plan, costs, *most)
        self.account(costs)
        self.pipeline = _Pipeline(self, op_id, steps, costs, shared_activations, watch, start_ns)
        return self.pipeline

    @staticmethod
    def _costs(steps, timer: StepTimer) -> tuple[list, tuple[int, int, int, int]]:
        """The cost of each step, and the most bytes a step loads (activations, weights), stores, and
        keeps in the global buffer: one pass over the steps (a large plan makes them on demand)."""
        costs = []
        a_max = w_max = s_max = k_max = 0
        step = timer.step
        for s in steps:
            costs.append(step(s))
            if s.a_bytes > a_max:
                a_max = s.a_bytes
            if s.w_bytes > w_max:
                w_max = s.w_bytes
            if s.store_bytes > s_max:
                s_max = s.store_bytes
            if s.store_key is not None and s.store_bytes > k_max:
                k_max = s.store_bytes
        return costs, (a_max, w_max, s_max, k_max)

    def _check_fits(self, plan: GemmPlan, costs, a_max: int, w_max: int, store_max: int, keep_max: int) -> None:
        """Every tile a step loads (at most ``a_max`` and ``w_max`` bytes), and the partial sums or outputs
        it writes (at most ``store_max``, ``keep_max`` of them kept in the global buffer), fit one slot of
        their buffer (the global buffer's too)."""
        self.activation_buffer.check_fits(a_max, "activation")
        self.weight_buffer.check_fits(w_max, "weight")
        if plan.spec is not None:
            self.output_buffer.check_fits(max((c.o_sram_write_bytes for c in costs), default=0), "partial-sum")
        else:
            self.output_buffer.check_fits(store_max, "output")
        gbuf = self.dma.global_buffer
        if gbuf is not None and plan.share_activations:
            gbuf.check_fits(a_max, "activation")
            gbuf.check_fits(keep_max, "partial-sum")

    def account(self, costs) -> None:
        """Add the steps' busy cycles of the tile's own units and array-side SRAM traffic."""
        cyc = self.cycle_ns
        arr = vec = dq = a_p = w_p = o_p = 0
        c = self.counts
        for k in costs:
            self.busy_cycles += k.compute_cycles
            arr += k.array_cycles
            vec += k.vector_cycles
            dq += k.dequant_cycles + k.convert_cycles
            a_p += k.activation_port_cycles
            w_p += k.weight_port_cycles
            o_p += k.output_port_cycles
            self.dequant_stall_ns += k.convert_stall_cycles * cyc
            c[0] += k.a_sram_read_bytes
            c[1] += k.w_sram_read_bytes
            c[2] += k.o_sram_read_bytes
            c[3] += k.o_sram_write_bytes
            c[4] += k.dequant_elements
            c[5] += k.vector_ops
        self.dequant_busy_cycles += dq
        self.array.busy_ns += arr * cyc
        self.vector.busy_ns += vec * cyc
        self.dequant.busy_ns += dq * cyc
        self.ports["activation"].busy_ns += a_p * cyc
        self.ports["weight"].busy_ns += w_p * cyc
        self.ports["output"].busy_ns += o_p * cyc


class _Pipeline:
    """One tile's run of one GEMM: the stage recurrences and the bookings of shared units."""

    def __init__(self, tile: ComputeTile, op_id: int, steps, costs, shared: bool, watch=None,
                 start_ns: float = 0.0):
        cfg = tile.config
        self.tile = tile
        self.op_id = op_id
        self.steps = steps
        self.costs = costs
        self.shared = shared
        self.in_slots = 2 if cfg.weight_buffer.double_buffered and cfg.activation_buffer.double_buffered else 1
        self.out_slots = 2 if cfg.output_buffer.double_buffered else 1
        self.use_dequant = any(c.dequant_cycles for c in costs)
        n = len(steps)
        # one entry per step, as flat arrays (8 bytes each: a large GEMM's run has millions of steps)
        self.load_start = array("d", bytes(8 * n))
        self.load_end = array("d", bytes(8 * n))
        self.dram_read = array("q", bytes(8 * n))
        self.compute_start = array("d", bytes(8 * n))
        self.compute_end = array("d", bytes(8 * n))
        self.stall = array("d", bytes(8 * n))
        # loader: steps [0, loaded) are in their buffers; a shared activation copy may be pending
        self.loaded = 0
        self.loader_free_ns = start_ns
        self.copy: tuple[float, float] | None = None  # (copy booking time ns, weight load end ns)
        # array and dequant unit: steps [0, computed) are through the array
        self.computed = 0
        self.array_free_ns = start_ns
        self.dq_take_ns = start_ns  # when the dequant unit took the previous step
        self.dq_end_ns = start_ns  # when it finished the previous step
        self.out_taken = 0  # output slots taken so far
        self.out_freed: list[float] = []  # when each store freed its output slot (ns)
        # writeback: (ready ns, step) of steps waiting to be stored, in order
        self.pending: deque[tuple[float, int]] = deque()
        self.writeback_free_ns = start_ns
        self.finish_ns = start_ns  # when the last step done so far was done
        # steady-state fast-forward: the watcher and the pipeline's number in it
        self.watch = watch
        self.ff_index = 0
        self.done = n == 0

    def turn(self) -> bool:
        """Book this pipeline's next request on the shared units (a load, the copy of a staged
        activation tile out of the global buffer, or a store); False once every step is done."""
        self._advance_array()
        if self.copy is not None:
            self._book_copy(self.copy[0])
            return True
        n = len(self.steps)
        pending = self.pending
        if pending and (self.loaded >= n or pending[0][1] + self.in_slots < self.loaded):
            t = pending[0][0]
            self._book_store(t if t > self.writeback_free_ns else self.writeback_free_ns)
            return True
        if self.loaded < n:
            i = self.loaded
            t = self.loader_free_ns
            if i >= self.in_slots:
                j = i - self.in_slots
                if j >= self.computed:  # pragma: no cover - the request order rules it out
                    raise RuntimeError(f"tile {self.tile.index}: load {i} before step {j} is through the array")
                t = max(t, self.compute_end[j])
            watch = self.watch
            if watch is not None and watch.pacer is self and self.steps[i].kk == 0 and watch.mark():
                return self.turn()  # moved on by whole periods: the same turn, from the moved state
            self._book_load(t)
            return True
        if self.computed < n:  # pragma: no cover - the recurrences cannot deadlock
            raise RuntimeError(f"tile {self.tile.index}: pipeline stuck at step {self.computed} of {n}")
        self.done = True
        return False

    def floor_ns(self) -> float:
        """A time (ns) no later than any request this pipeline has still to book (inf when done)."""
        if self.done:
            return float("inf")
        out = self.loader_free_ns if self.loaded < len(self.steps) else float("inf")
        if self.copy is not None:
            out = min(out, self.copy[0])
        if self.pending:
            out = min(out, self.pending[0][0])
        if self.computed < self.loaded:
            out = min(out, min(self.load_end[self.computed:self.loaded]))
        return out

    # --- steady-state fast-forward (mixpe_sys.hw.steady_state) ---------------------------------

    def booked_loads(self) -> int:
        """Steps whose loads are booked: those in their buffers, and the one whose staged
        activation copy is still to be booked (its load start and DRAM bytes are set)."""
        return self.loaded + (self.copy is not None)

    def window_start(self) -> int:
        """The first step whose times the pipeline may still read or record."""
        lo = min(self.computed, max(self.loaded - self.in_slots, 0))
        return min(lo, self.pending[0][1]) if self.pending else lo

    def state_key(self, now: float, floor_ns: float) -> tuple:
        """Everything that decides this pipeline's future, relative to ``now`` (ns) and to its next
        step: times that can only matter through ``max(t, a time >= now)`` as ``max(t - now, 0)``,
        the recorded times of steps in flight exactly (or, below ``floor_ns``, absolutely)."""
        def live(x):
            return x - now if x > now else 0.0

        def exact(x):
            return x - now if x >= floor_ns else ("abs", x)

        lo, ld, cp, bk = self.window_start(), self.loaded, self.computed, self.booked_loads()
        r0 = max(self.out_taken - self.out_slots, 0)
        return (ld - lo, cp - ld, ld == len(self.steps), self.out_taken - len(self.out_freed),
                tuple(exact(x) for x in self.load_start[lo:bk]), tuple(exact(x) for x in self.load_end[lo:ld]),
                tuple(self.dram_read[lo:bk]), tuple(exact(x) for x in self.compute_start[lo:cp]),
                tuple(exact(x) for x in self.compute_end[lo:cp]), tuple(self.stall[lo:cp]),
                tuple(live(x) for x in self.out_freed[r0:]), tuple((live(t), i - ld) for t, i in self.pending),
                None if self.copy is None else (live(self.copy[0]), live(self.copy[1])),
                live(self.loader_free_ns), live(self.array_free_ns), live(self.dq_take_ns), live(self.dq_end_ns),
                live(self.writeback_free_ns), live(self.finish_ns), self.done)

    def latest_ns(self) -> float:
        """The latest time (ns) the pipeline holds."""
        lo, ld, cp = self.window_start(), self.loaded, self.computed
        times = [self.loader_free_ns, self.array_free_ns, self.dq_take_ns, self.dq_end_ns, self.writeback_free_ns,
                 self.finish_ns, *self.load_end[lo:ld], *self.compute_end[lo:cp], *self.out_freed[-2:],
                 *(t for t, _ in self.pending), *(self.copy or ())]
        return max(times)

    def shift(self, now: float, dt_ns: float, steps: int, stores: int) -> None:
        """Move the pipeline ``steps`` steps, ``stores`` stores and ``dt_ns`` on: times from ``now`` on
        (and every time of a step in flight) gain ``dt_ns``, step indices gain ``steps``."""
        def sh(x):
            return x + dt_ns if x >= now else x

        lo, ld, cp, bk = self.window_start(), self.loaded, self.computed, self.booked_loads()
        self.load_start[lo + steps:bk + steps] = array("d", [x + dt_ns for x in self.load_start[lo:bk]])
        self.load_end[lo + steps:ld + steps] = array("d", [x + dt_ns for x in self.load_end[lo:ld]])
        self.dram_read[lo + steps:bk + steps] = self.dram_read[lo:bk]
        for arr in (self.compute_start, self.compute_end):
            arr[lo + steps:cp + steps] = array("d", [x + dt_ns for x in arr[lo:cp]])
        self.stall[lo + steps:cp + steps] = self.stall[lo:cp]
        r0 = max(self.out_taken - self.out_slots, 0)
        self.out_freed = self.out_freed[:r0] + [0.0] * stores + [sh(x) for x in self.out_freed[r0:]]
        self.out_taken += stores
        self.pending = deque((sh(t), i + steps) for t, i in self.pending)
        if self.copy is not None:
            self.copy = (sh(self.copy[0]), sh(self.copy[1]))
        self.loader_free_ns, self.array_free_ns = sh(self.loader_free_ns), sh(self.array_free_ns)
        self.dq_take_ns, self.dq_end_ns = sh(self.dq_take_ns), sh(self.dq_end_ns)
        self.writeback_free_ns, self.finish_ns = sh(self.writeback_free_ns), sh(self.finish_ns)
        self.loaded += steps
        self.computed += steps

    # --- bookings of shared units --------------------------------------------------------------

    def _book_load(self, now: float) -> None:
        tile, i = self.tile, self.loaded
        s, dma = self.steps[i], tile.dma
        self.load_start[i] = now
        done = now
        dram = 0
        if s.w_key is not None:
            done = dma.book_load(now, tile.index, tile.weight_buffer, s.w_addr, s.w_bytes)
            dram += s.w_bytes
        if s.a_key is not None:
            if self.shared:
                staged_ns, staged_bytes = dma.stage(now, s.a_key, s.a_addr, s.a_bytes)
                if self.watch is not None:
                    self.watch.booked(self, LOAD, i, now, staged_ns, staged_bytes > 0)
                self.dram_read[i] = dram + staged_bytes
                # the copy out of the global buffer is this tile's next request, once the tile is staged
                self.copy = (staged_ns if staged_ns > now else now, done)
                return
            done = max(done, dma.book_load(now, tile.index, tile.activation_buffer, s.a_addr, s.a_bytes))
            dram += s.a_bytes
        if self.watch is not None:
            self.watch.booked(self, LOAD, i, now, None, False)
        self.dram_read[i] = dram
        self._loaded(done)

    def _book_copy(self, now: float) -> None:
        tile = self.tile
        s = self.steps[self.loaded]
        w_done = self.copy[1]
        self.copy = None
        if self.watch is not None:
            self.watch.booked(self, COPY, self.loaded, now, None, False)
        self._loaded(max(w_done, tile.dma.book_copy(now, tile.index, tile.activation_buffer, s.a_bytes)))

    def _loaded(self, done: float) -> None:
        self.load_end[self.loaded] = done
        self.loader_free_ns = done
        self.loaded += 1

    def _book_store(self, now: float) -> None:
        tile = self.tile
        _, i = self.pending.popleft()
        s = self.steps[i]
        if self.watch is not None:
            self.watch.booked(self, STORE, i, now, None, False)
        if s.store_key is not None and self.shared:
            done = tile.dma.book_keep(now, tile.index, tile.output_buffer, s.store_key, s.store_bytes)
            written = 0
        else:
            done = tile.dma.book_store(now, tile.index, tile.output_buffer, s.store_addr, s.store_bytes)
            written = s.store_bytes
        self.writeback_free_ns = done
        self.out_freed.append(done)
        self._record(i, done, written)

    # --- tile-local stages -----------------------------------------------------------------------

    def _advance_array(self) -> None:
        """Run the array and dequant recurrences over every step whose inputs are known."""
        tile, steps, costs, cyc = self.tile, self.steps, self.costs, self.tile.cycle_ns
        while self.computed < self.loaded:
            i = self.computed
            s, c = steps[i], costs[i]
            start = max(self.load_end[i], self.array_free_ns)
            if s.kk == 0:
                r = self.out_taken - self.out_slots
                if r >= 0:
                    if r >= len(self.out_freed):
                        return  # waits for a store still to be booked
                    start = max(start, self.out_freed[r])
                self.out_taken += 1
            end = start + c.compute_cycles * cyc
            self.compute_start[i] = start
            self.compute_end[i] = end
            ready = end
            self.array_free_ns = end
            if self.use_dequant:
                # the one-entry queue frees when the unit takes the previous step
                handed = max(end, self.dq_take_ns)
                take = max(handed, self.dq_end_ns)
                ready = take + c.dequant_cycles * cyc
                self.dq_take_ns, self.dq_end_ns = take, ready
                self.array_free_ns = handed
                self.stall[i] = handed - end
                tile.dequant_stall_ns += handed - end
            self.computed += 1
            if s.store_bytes:
                self.pending.append((ready, i))
            else:
                self._record(i, ready, 0)

    def _record(self, i: int, done_ns: float, written: int) -> None:
        if done_ns > self.finish_ns:
            self.finish_ns = done_ns
        recorder = self.tile.recorder
        if not recorder.record_steps:
            return
        s = self.steps[i]
        recorder.step(StepRecord(
            op_id=self.op_id, tile=self.tile.index, step=s.index, inst=s.inst, i=s.i, j=s.j, kk=s.kk,
            m=s.m, n=s.n, k=s.k, macs=s.macs, load_start_ns=self.load_start[i], load_end_ns=self.load_end[i],
            compute_start_ns=self.compute_start[i], compute_end_ns=self.compute_end[i], done_ns=done_ns,
            dequant_stall_ns=self.stall[i], dram_read_bytes=self.dram_read[i], dram_write_bytes=written,
            cost=self.costs[i]))
