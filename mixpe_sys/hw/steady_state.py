"""Exact steady-state fast-forward of one GEMM's tile pipelines.

A large regular GEMM runs the same round of tile steps again and again. The
watcher takes a snapshot of the whole accelerator whenever the pacer (the
tile with the most steps) is about to load the first K step of an output
block: every FIFO server's backlog, every pipeline's state (times relative to
now, step indices relative to its next load), the order in which the sleeping
pipelines wake. When a snapshot equals an earlier one of the same binade of
``now`` (the interval ``[2^(e-1), 2^e)`` in which every float time has the
same spacing ``u``), the run between them is a period: it checks that the
coming steps are the period's steps again (the same sizes, costs and DRAM
channel phase), that every staging lookup in the global buffer and, with
row-buffer timing, every row activation comes out as in the period, then
skips whole periods and lets the tail run normally.

Exactness (docs/timing.md): inside one binade every time is a multiple of
``u``, so ``t + c`` rounds to ``t + round(c)`` whatever ``t`` is, differences
are exact and comparisons are unchanged by a shift of an even number of
``u``: the skipped periods would have repeated the observed one shifted by
``k * P`` bit for bit, as long as every time stays below ``2^e``. Times are
shifted by exact multiples of ``P``; float counters (busy times, stall
times) get the period's increments added one by one, in order, ``n`` times,
as the simulation adds them; integer counters get ``n`` times their
increase. Results are identical to the full simulation, bit for bit.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..metrics.records import StepRecord

LOAD, COPY, STORE = 0, 1, 2
"""Kinds of booking a pipeline reports."""

# How hard the watcher looks for periods. These change how soon (and whether) a period is found and
# what looking costs, never a figure: every skip is checked exact, and a run it does not skip is the
# full simulation.

SNAPSHOTS_KEPT = 32
"""Snapshots kept to compare with (the longest period found, in snapshots)."""

LOGGED_SNAPSHOTS = 8
"""Snapshots a look for a period logs before it gives up (and waits twice as long as last time)."""

STEPS_PER_SNAPSHOT = 4
"""Pacer steps at least between snapshots (they are taken every so many output blocks)."""

MIN_SNAPSHOTS = 16
"""Snapshots a run must allow for its periods to be looked for (shorter runs are simulated in full)."""


def snapshot_spacing(steps) -> int:
    """Output blocks between snapshots of a pacer running ``steps``: at least ``STEPS_PER_SNAPSHOT`` steps."""
    blocks = max(1, sum(1 for s in steps if s.kk == 0))
    return max(1, -(-STEPS_PER_SNAPSHOT * blocks // max(1, len(steps))))


def worth_watching(plan, design) -> bool:
    """True when the longest tile's share of ``plan`` allows ``MIN_SNAPSHOTS`` snapshots and
    ``design``'s DRAM has no row-buffer timing: checking that every row activation of the skipped
    periods comes out as in the observed one replays the DRAM's row rule access by access, which
    measured as slow as simulating those periods (docs/timing.md)."""
    if design.dram.row_buffer is not None:
        return False
    if plan.keeps_partials:
        return False  # partial sums kept in the global buffer: their keys are not shifted
    steps = max(plan.steps, key=len, default=())
    if len(steps) < MIN_SNAPSHOTS * STEPS_PER_SNAPSHOT or \
            sum(1 for s in steps if s.kk == 0) < MIN_SNAPSHOTS * snapshot_spacing(steps):
        return False
    # step rows name steps by position (steps made on demand are numbered so by construction)
    return all(getattr(t, "positional_index", False) or all(s.index == i for i, s in enumerate(t))
               for t in plan.steps)


_UNITS_PER_BINADE = 2 ** 53  # multiples of u in [0, 2^e): u = 2^(e-53)


@dataclass
class _Snapshot:
    now: float
    cursors: list  # per pipeline: (loaded, computed, out_taken, window start, booked loads)
    fifo_pos: int
    book_pos: int
    records: int
    counters: list  # DRAM and SRAM byte counters
    open_rows: list


class SteadyState:
    """Watches one GEMM's pipelines and skips whole repeated periods of the run.

    Parameters
    ----------
    dram, dma:
        The accelerator's DRAM and DMA engine.
    servers:
        Every FIFO server (DRAM channels, links, SRAM ports).
    buffers:
        Every SRAM buffer (tile buffers, global buffer).
    recorder:
        The run's recorder (skipped steps' records are added to it when it keeps them).
    """

    def __init__(self, dram, dma, servers, buffers, recorder):
        self.dram = dram
        self.dma = dma
        self.servers = list(servers)
        self.buffers = list(buffers)
        self.recorder = recorder
        self.pipelines: list = []
        self.pacer = None
        self.fifo_log = array("d")  # (server id, service ns, bytes) per booking of a FIFO server, while logging
        self.logging = False
        self.seen: list = []  # row activations of each logged booking (row-buffer timing)
        self.seen_rows: list = []  # open rows after them
        self.cooldown = self.backoff = 0  # marks to let pass before looking again, after a fruitless look
        self.every = 1  # snapshot at every so many output blocks of the pacer
        self.calls = 0
        self.bookings: list[tuple] = []  # (pipeline, kind, step, now ns, staged ns or None, staged from DRAM)
        self.history: dict[tuple, list[_Snapshot]] = {}
        self.order: deque = deque()
        self.classes: list | None = None
        self.phase_bytes = dram.config.interleave_bytes * dram.config.channels
        self.skipped_periods = 0
        self.skipped_ns = 0.0
        self.skipped_steps = 0

    def attach(self, pipelines: list) -> None:
        """Watch ``pipelines`` (one per tile with steps); the longest paces the snapshots."""
        self.pipelines = list(pipelines)
        for k, p in enumerate(self.pipelines):
            p.ff_index = k
        self.pacer = max(self.pipelines, key=lambda p: len(p.steps)) if self.pipelines else None
        if self.pacer is not None:
            self.every = snapshot_spacing(self.pacer.steps)

    def detach(self) -> None:
        """The run is over: let go of the pipelines, logs and snapshots (the skip counts stay)."""
        self._set_logging(False)
        self.pipelines, self.pacer, self.classes = [], None, None
        self.history, self.order = {}, deque()

    def booked(self, pipeline, kind: int, step: int, now: float, staged_ns: float | None, from_dram: bool) -> None:
        """A pipeline booked a load, copy or store of ``step`` at ``now``; a staging lookup answered
        ``staged_ns`` (read from DRAM when ``from_dram``)."""
        if self.logging:
            self.bookings.append((pipeline.ff_index, kind, step, now, staged_ns, from_dram))

    # --- snapshots ---------------------------------------------------------------------------

    def floor_ns(self) -> float:
        """A time (ns) no later than any request still to be booked: the run's present, to which
        every state is taken relative (an earlier time can only matter through a max with a later one)."""
        return min(p.floor_ns() for p in self.pipelines)

    def mark(self) -> float:
        """The pacer is about to load an output block's first K step: take a snapshot relative to
        :meth:`floor_ns`, skip whole periods if one ends here; return the time skipped (ns, 0 if none).

        Until two snapshots agree nothing is logged; from the later of them on, every booking and
        FIFO service is logged until a period from it checks out (or ``LOGGED_SNAPSHOTS`` snapshots
        pass without one)."""
        self.calls += 1
        if self.calls % self.every:
            return 0.0
        now = self.floor_ns()
        if not 0.0 < now < float("inf"):
            return 0.0
        if self.cooldown:
            self.cooldown -= 1
            return 0.0
        e = math.frexp(now)[1]  # now in [2^(e-1), 2^e)
        sig = self._signature(now, math.ldexp(1.0, e - 1), e)
        snap = _Snapshot(
            now=now,
            cursors=[(p.loaded, p.computed, p.out_taken, p.window_start(), p.booked_loads())
                     for p in self.pipelines],
            fifo_pos=len(self.fifo_log) // 3, book_pos=len(self.bookings), records=len(self.recorder.steps),
            counters=self._counters(), open_rows=self.dram.open_rows())
        if not self.logging:
            if sig in self.history:
                self._set_logging(True)
                snap.fifo_pos = snap.book_pos = 0
                self.history = {sig: [snap]}
                self.order = deque([sig])
            else:
                self._remember(sig, snap)
            return 0.0
        for earlier in reversed(self.history.get(sig, ())):
            plan = self._verify(earlier, snap, e)
            if plan is not None:
                return self._skip(earlier, snap, plan)
        if len(self.order) >= LOGGED_SNAPSHOTS:
            self._set_logging(False)
            self.history, self.order = {}, deque()
            self.backoff = 2 * self.backoff + LOGGED_SNAPSHOTS
            self.cooldown = self.backoff
        self._remember(sig, snap)
        return 0.0

    def _remember(self, sig: tuple, snap: _Snapshot) -> None:
        self.history.setdefault(sig, []).append(snap)
        self.order.append(sig)
        if len(self.order) > SNAPSHOTS_KEPT:
            old = self.order.popleft()
            self.history[old].pop(0)
            if not self.history[old]:
                del self.history[old]

    def _set_logging(self, on: bool) -> None:
        self.logging = on
        self.seen = []
        self.seen_rows = self.dram.open_rows()
        del self.fifo_log[:]
        self.bookings.clear()
        for k, server in enumerate(self.servers):
            server.log = (self.fifo_log, float(k)) if on else None

    def _signature(self, now: float, floor_ns: float, e: int) -> tuple:
        fifo = tuple(s.free_at_ns - now if s.free_at_ns > now else 0.0 for s in self.servers)
        return e, fifo, tuple(p.state_key(now, floor_ns) for p in self.pipelines)

    def _counters(self) -> list[int]:
        out = [self.dram.read_bytes, self.dram.write_bytes]
        for b in self.buffers:
            out += (b.read_bytes, b.write_bytes)
        return out

    def _latest_ns(self, now: float) -> float:
        latest = max((s.free_at_ns for s in self.servers), default=now)
        latest = max(latest, max(p.latest_ns() for p in self.pipelines))
        return max(latest, max(self.dma.staged_times(), default=now), now)

    # --- checking a period -------------------------------------------------------------------

    def _verify(self, a: _Snapshot, b: _Snapshot, e: int):
        """(period ns, steps per pipeline, periods to skip, staged tiles, open rows) if the run
        from ``a`` to ``b`` can be repeated at least once more, else None."""
        period = b.now - a.now
        u = math.ldexp(1.0, e - 53)
        units = int(period / u)
        if units <= 0 or units % 2:  # an odd multiple of u could flip a rounding tie
            return None
        latest = self._latest_ns(b.now)
        if latest >= math.ldexp(1.0, e):
            return None
        n = (_UNITS_PER_BINADE - 1 - int(latest / u)) // units  # every time stays below 2^e
        steps = []
        for p, ca, cb in zip(self.pipelines, a.cursors, b.cursors):
            d = cb[0] - ca[0]
            steps.append(d)
            if d == 0:
                if not p.done:
                    return None
                continue
            if cb[3] < ca[4]:  # a step in flight at b had its load booked before a
                return None
            n = min(n, self._periods_of_steps(p, ca[3], cb[4], d))  # up to a pending copy's step
            if n <= 0:
                return None
        n, staged, rows = self._check_bookings(a, b, steps, period, n)
        if n <= 0:
            return None
        return period, steps, n, staged, rows

    def _periods_of_steps(self, p, lo: int, hi: int, d: int) -> int:
        """How many times steps ``[lo, hi)`` of ``p`` repeat ``d`` steps on, one after the other."""
        if self.classes is None:
            self.classes = self._step_classes()
        seg = self.classes[p.ff_index][lo:]
        if len(seg) <= d:
            return 0
        bad = np.flatnonzero(seg[d:] != seg[:-d])
        first_bad = int(bad[0]) if bad.size else len(seg) - d
        width = hi - lo
        return (first_bad - width) // d + 1 if first_bad >= width else 0

    def _step_classes(self) -> list[np.ndarray]:
        """Per pipeline, a number per step: equal numbers for steps the hardware times alike
        (sizes, loads, stores, costs, DRAM channel phase of every address). Costs are told apart
        by identity: the step timer hands out one cost object per distinct step (a cost computed
        twice would only split a class, never merge two)."""
        ids: dict = {}
        ph = self.phase_bytes
        out = []
        for p in self.pipelines:
            out.append(np.fromiter(
                (ids.setdefault((s.kk == 0, s.store_bytes, s.a_key is None, s.a_bytes, s.w_key is None, s.w_bytes,
                                 s.a_addr % ph, s.w_addr % ph, s.store_addr % ph, id(c)), len(ids))
                 for s, c in zip(p.steps, p.costs)), dtype=np.int64, count=len(p.steps)))
        return out

    def _accesses(self, p, kind: int, s, from_dram: bool):
        """DRAM accesses (address, bytes) a booking of step ``s`` makes, in order."""
        if kind == STORE:
            return ((s.store_addr, s.store_bytes),)
        if kind == COPY:
            return ()
        out = []
        if s.w_key is not None:
            out.append((s.w_addr, s.w_bytes))
        if s.a_key is not None and (from_dram or not p.shared):
            out.append((s.a_addr, s.a_bytes))
        return out

    def _observed_misses(self, upto: int) -> list:
        """Row activations of every logged booking's DRAM accesses up to booking ``upto``, replayed
        from the open rows when logging began (the simulation's own counts)."""
        pipes = self.pipelines
        for k, kind, i, _, _, from_dram in self.bookings[len(self.seen):upto]:
            p = pipes[k]
            self.seen.append([self.dram.row_misses(self.seen_rows, addr, nb)
                              for addr, nb in self._accesses(p, kind, p.steps[i], from_dram)])
        return self.seen

    def _check_bookings(self, a: _Snapshot, b: _Snapshot, steps: list, period: float, n: int):
        """Replay the period's staging lookups and row activations over the next ``n`` periods;
        return (periods that come out the same, tiles they stage, open rows after them)."""
        booked = self.bookings[a.book_pos:b.book_pos]
        rows = self.dram.has_row_buffer
        if not rows and all(staged is None for *_, staged, _ in booked):
            return n, {}, None
        pipes = self.pipelines
        if rows:
            seen = self._observed_misses(b.book_pos)[a.book_pos:]
            if self.seen_rows != b.open_rows:  # pragma: no cover - the replay is the DRAM's own rule
                return 0, {}, None
            table = b.open_rows
        staged: dict = {}
        for period_no in range(1, n + 1):
            shift = period_no * period
            new: dict = {}
            trial = [list(r) for r in table] if rows else None
            ok = True
            for j, (k, kind, i, now, staged_ns, from_dram) in enumerate(booked):
                p = pipes[k]
                s = p.steps[i + period_no * steps[k]]
                if staged_ns is not None:
                    got = new.get(s.a_key)
                    if got is None:
                        got = staged.get(s.a_key)
                    if got is None:
                        got = self.dma.staged_ns(s.a_key)
                    if from_dram:
                        if got is not None:
                            ok = False
                            break
                        new[s.a_key] = staged_ns + shift
                    else:
                        at = now + shift
                        if got is None or ((got - at if got > at else 0.0)
                                           != (staged_ns - now if staged_ns > now else 0.0)):
                            ok = False
                            break
                if rows:
                    misses = [self.dram.row_misses(trial, addr, nb)
                              for addr, nb in self._accesses(p, kind, s, from_dram)]
                    if misses != seen[j]:
                        ok = False
                        break
            if not ok:
                return period_no - 1, staged, table if rows else None
            staged.update(new)
            if rows:
                table = trial
        return n, staged, table if rows else None

    # --- skipping ----------------------------------------------------------------------------

    def _skip(self, a: _Snapshot, b: _Snapshot, plan) -> float:
        period, steps, n, staged, rows = plan
        now = b.now
        dt = n * period  # exact: a multiple of u below 2^53 u
        log = np.frombuffer(self.fifo_log, dtype=np.float64).reshape(-1, 3)
        seg = log[a.fifo_pos:b.fifo_pos]
        ids = seg[:, 0].astype(np.int64)
        for sid in np.unique(ids):
            mine = seg[ids == sid]
            server = self.servers[int(sid)]
            server.busy_ns = replay_sum(server.busy_ns, mine[:, 1], n)
            server.served_bytes += n * int(mine[:, 2].sum())
        del log, seg
        for server in self.servers:
            if server.free_at_ns >= now:
                server.free_at_ns += dt
        grow = [n * (y - x) for x, y in zip(a.counters, b.counters)]
        self.dram.read_bytes += grow[0]
        self.dram.write_bytes += grow[1]
        for k, buf in enumerate(self.buffers):
            buf.read_bytes += grow[2 + 2 * k]
            buf.write_bytes += grow[3 + 2 * k]
        if rows is not None:
            self.dram.set_open_rows(rows)
        self.dma.add_staged(staged)
        recorder = self.recorder
        if recorder.record_steps:
            self._add_records(recorder.steps[a.records:b.records], steps, period, n)
        for p, ca, cb, d in zip(self.pipelines, a.cursors, b.cursors, steps):
            if d == 0:
                continue
            if p.use_dequant:
                p.tile.dequant_stall_ns = replay_sum(p.tile.dequant_stall_ns,
                                                     np.asarray(p.stall[ca[1]:cb[1]], dtype=np.float64), n)
            p.shift(now, dt, n * d, n * (cb[2] - ca[2]))
            self.skipped_steps += n * d
        self.skipped_periods += n
        self.skipped_ns += dt
        self.history, self.order = {}, deque()
        self._set_logging(False)
        return dt

    def _add_records(self, records, steps: list, period: float, n: int) -> None:
        """The skipped steps' records: the period's, shifted by whole periods, for the steps they stand for."""
        by_tile = {p.tile.index: p for p in self.pipelines}
        add = self.recorder.step
        for period_no in range(1, n + 1):
            dt = period_no * period
            for r in records:
                p = by_tile[r.tile]
                i = r.step + period_no * steps[p.ff_index]
                s = p.steps[i]
                add(StepRecord(
                    op_id=r.op_id, tile=r.tile, step=s.index, inst=s.inst, i=s.i, j=s.j, kk=s.kk, m=s.m, n=s.n,
                    k=s.k, macs=s.macs, load_start_ns=r.load_start_ns + dt, load_end_ns=r.load_end_ns + dt,
                    compute_start_ns=r.compute_start_ns + dt, compute_end_ns=r.compute_end_ns + dt,
                    done_ns=r.done_ns + dt, dequant_stall_ns=r.dequant_stall_ns, dram_read_bytes=r.dram_read_bytes,
                    dram_write_bytes=r.dram_write_bytes, cost=p.costs[i]))


def replay_sum(total: float, increments: np.ndarray, times: int) -> float:
    """``total`` plus ``increments`` one after the other, ``times`` over, each addition rounded
    as a Python ``+=`` rounds it (``numpy.add.accumulate`` adds strictly left to right)."""
    if not increments.size or times <= 0:
        return total
    chunk = max(1, (1 << 20) // increments.size)
    while times:
        r = min(chunk, times)
        seq = np.concatenate(([total], np.tile(increments, r)))
        total = float(np.add.accumulate(seq)[-1])
        times -= r
    return total
