"""The layer-by-layer engine: run a sequence of ops, each from idle to drained.

Every op boundary is a barrier (every unit idle, buffers drained), so an op's
cost depends only on its :meth:`~mixpe_sys.workload.ops.Op.cost_key` and the
design. The engine therefore simulates each distinct op once and reuses its
cost for every identical op (identical layers, identical decode-step ops);
``reuse=False`` simulates every op and gives the same results exactly. A run
is given as :class:`~mixpe_sys.workload.ops.OpBlock` s (a layer's ops repeated
over identical layers): a repeated layer costs one lookup per op of one copy,
whatever the layer count, and the op records are kept as an
:class:`~.op_table.OpTable`.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from typing import Iterable

import pandas as pd
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..hw.config import AcceleratorConfig
from ..hw.launch import LaunchMode, launch_mode
from ..workload.ops import Op, OpBlock, blocks_of
from ..report import utilization_frame
from ..metrics.records import OpCost
from .launch import with_launch
from .cost_store import CostStore, design_hash, open_store
from .op_sim import simulate_op
from .op_table import OP_COLUMNS, OpTable

__all__ = ["OP_COLUMNS", "CostCache", "OpsRun", "run_blocks", "run_ops"]

#: Longest time simulated costs wait in memory before they are written to the persistent store, s.
STORE_FLUSH_S = 2.0


@dataclass
class CostCache:
    """Exact per-op costs on one design, keyed by ``Op.cost_key()``.

    Every op is one kernel: its cost is its device cost plus the design's
    launch cost per kernel under ``launch`` (``graph`` or ``eager``; see
    :mod:`mixpe_sys.hw.launch`). ``workers`` > 1 lets :meth:`prefetch` simulate several missing ops at
    once on that many processes (each op still runs alone in a fresh
    simulation, so the costs are the same as with one process). Call
    :meth:`close` (or use the cache as a context manager) to stop them.

    ``cache_dir`` names the persistent store consulted before simulating and
    written after (:mod:`.cost_store`): None the default directory
    (``MIXPE_SIM_CACHE_DIR`` or the user cache directory), a path that
    directory, False no store. Stored costs are exact, so it changes no figure.
    ``fast_forward`` (default True) skips repeated periods of each GEMM's steady state
    (:mod:`mixpe_sys.hw.steady_state`); the costs are bit for bit the same without it.
    """

    design: AcceleratorConfig
    costs: dict = field(default_factory=dict)  # cost key -> cost with the launch cost
    simulated: int = 0
    workers: int = 1
    launch: LaunchMode = LaunchMode.GRAPH
    cache_dir: object = None
    fast_forward: bool = True
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False, compare=False)
    _store: CostStore | None = field(default=None, init=False, repr=False, compare=False)
    _dhash: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.launch = launch_mode(self.launch)
        self._store = open_store(self.cache_dir)
        self._dhash = design_hash(self.design) if self._store is not None else ""

    def _keep(self, key, device_cost: OpCost) -> OpCost:
        """Remember ``device_cost`` (the store holds device costs, whatever the launch mode) and return
        the cost with this run's launch cost."""
        cost = with_launch(device_cost, self.design, self.launch)
        self.costs[key] = cost
        return cost

    def cost(self, op: Op, reuse: bool = True) -> OpCost:
        """The op's cost, simulated on first sight (always, when ``reuse`` is False)."""
        key = op.cost_key()
        if reuse:
            hit = self.costs.get(key)
            if hit is not None:
                return hit
            if self._store is not None:
                stored = self._store.get(self._dhash, key)
                if stored is not None:
                    return self._keep(key, stored)
        device = simulate_op(op, self.design, self.fast_forward)
        self.simulated += 1
        if reuse and self._store is not None:
            self._store.put(self._dhash, key, device)
        return self._keep(key, device)

    def prefetch(self, ops: Iterable[Op], progress: bool | None = False) -> None:
        """Simulate the distinct ops among ``ops`` that are not cached yet, on ``workers`` processes when
        ``workers`` > 1 and more than one is missing, largest first (``progress``: a bar over them with
        the time left, None = on a terminal after a second). New costs reach the persistent store in
        batches, at least every :data:`STORE_FLUSH_S` seconds."""
        missing: dict = {}
        for op in ops:
            key = op.cost_key()
            if key not in self.costs and key not in missing:
                missing[key] = op
        if self._store is not None and missing:
            for key, stored in self._store.get_many(self._dhash, missing).items():
                self._keep(key, stored)
                del missing[key]
        if not missing:
            return
        # largest first, so that the last op to finish on a worker is a small one
        keys = sorted(missing, key=lambda k: -(missing[k].macs + missing[k].elements))
        ops = [missing[k] for k in keys]
        # tqdm's time left follows its smoothed op rate (larger ops first: an overestimate at the start)
        bar = tqdm(total=len(ops), desc="simulating distinct ops", unit="op", leave=False, delay=1.0,
                   disable=True if progress is False else (False if progress else None))
        parallel = len(ops) > 1 and self.workers > 1 and not multiprocessing.current_process().daemon
        if parallel and self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers)
        results = (self._pool.map(simulate_op, ops, repeat(self.design), repeat(self.fast_forward)) if parallel
                   else (simulate_op(op, self.design, self.fast_forward) for op in ops))
        pending: dict = {}
        flushed = time.monotonic()
        try:
            with _ticking(bar):
                for key, device in zip(keys, results):
                    pending[key] = device
                    self._keep(key, device)
                    self.simulated += 1
                    bar.update(1)
                    if self._store is not None and time.monotonic() - flushed > STORE_FLUSH_S:
                        self._store.put_many(self._dhash, pending)
                        pending, flushed = {}, time.monotonic()
        finally:
            bar.close()
            if self._store is not None:
                self._store.put_many(self._dhash, pending)

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> "CostCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def _ticking(bar, every_s: float = 1.0):
    """Redraw ``bar`` every ``every_s`` seconds from a thread while the block runs, so that it appears
    after its delay and its clock runs even while one long op is being simulated."""
    if bar.disable:
        yield
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every_s):
            if time.time() - bar.start_t >= bar.delay:
                bar.refresh()

    thread = threading.Thread(target=tick, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class OpsRun:
    """Per-op rows of an engine run plus counters."""

    ops: pd.DataFrame
    utilization: pd.DataFrame  # one row per unit class: busy_s over the run, utilization = busy / device time
    simulated_ops: int
    distinct_ops: int
    total_ops: int


@dataclass(frozen=True)
class BlocksRun:
    """An engine run kept compact: its op records as an :class:`OpTable`, plus counters."""

    table: OpTable
    utilization: pd.DataFrame  # one row per unit class: busy_s over the run, utilization = busy / device time
    simulated_ops: int
    distinct_ops: int
    total_ops: int


def _cache_for(design: AcceleratorConfig, cache: CostCache | None, launch) -> CostCache:
    cache = cache if cache is not None else CostCache(design, launch=launch or LaunchMode.GRAPH)
    if launch is not None and launch_mode(launch) is not cache.launch:
        raise ConfigError(f"field 'launch': {launch_mode(launch).value}, but the cost cache is for "
                          f"{cache.launch.value}")
    return cache


def run_blocks(blocks: Iterable[OpBlock], design: AcceleratorConfig, *, reuse: bool = True,
               progress: bool | None = None, cache: CostCache | None = None,
               launch: LaunchMode | str | None = None) -> BlocksRun:
    """Run ``blocks`` back to back on ``design`` (see :func:`run_ops`).

    With ``reuse``, the blocks' distinct ops are simulated first (:meth:`CostCache.prefetch`, on the
    cache's workers, with a progress bar over them), then each block costs one lookup per op of one
    copy. Without, every op of every copy is simulated (each copy must cost the same: the simulation
    is deterministic).
    """
    cache = _cache_for(design, cache, launch)
    blocks = [b for b in blocks if b.ops and b.layers > 0]
    before = cache.simulated
    if reuse:
        cache.prefetch((op for b in blocks for op in b.ops), progress=progress)
    table = OpTable()
    uses: dict[tuple, list] = {}  # cost key -> [cost, times used], in order of first use
    busy: dict[str, float] = {}
    for block in blocks:
        keyed = []
        for op in block.ops:
            key = op.cost_key()
            c = cache.cost(op, reuse)
            keyed.append((key, c))
            if reuse:
                used = uses.get(key)
                if used is None:
                    uses[key] = [c, block.layers]
                else:
                    used[1] += block.layers
        if not reuse:
            for copy in range(block.layers):
                copy_costs = keyed if copy == 0 else [(op.cost_key(), cache.cost(op, False)) for op in block.ops]
                for (key, c), (_, first) in zip(copy_costs, keyed):
                    if c != first:
                        raise RuntimeError(f"op {key} simulated twice gave two costs")
                    for unit, b in c.unit_busy_ns:
                        busy[unit] = busy.get(unit, 0.0) + b
        table.add(block, keyed)
    for c, n in uses.values():
        for unit, b in c.unit_busy_ns:
            busy[unit] = busy.get(unit, 0.0) + n * b
    return BlocksRun(table=table, utilization=utilization_frame(busy, table.device_time_ns()),
                     simulated_ops=cache.simulated - before, distinct_ops=len(cache.costs), total_ops=len(table))


def run_ops(ops: Iterable[Op], design: AcceleratorConfig, *, reuse: bool = True, progress: bool | None = None,
            total: int | None = None, cache: CostCache | None = None,
            launch: LaunchMode | str | None = None) -> OpsRun:
    """Run ``ops`` back to back on ``design``.

    Parameters
    ----------
    ops:
        The ops in program order.
    design:
        The accelerator.
    reuse:
        Reuse the cost of an identical op instead of simulating it again.
    progress:
        Show a progress bar over the distinct ops being simulated (None: only on a terminal, after a second).
    total:
        Number of ops (unused: the bar counts distinct ops; kept for callers).
    cache:
        A cost cache to share between runs on the same design.
    launch:
        How kernels are issued (``graph`` or ``eager``); default the cache's, or ``graph``.

    Returns
    -------
    OpsRun
        One row per op (times in s from the start of the run).
    """
    run = run_blocks(blocks_of(ops), design, reuse=reuse, progress=progress, cache=cache, launch=launch)
    return OpsRun(ops=run.table.ops_frame(), utilization=run.utilization, simulated_ops=run.simulated_ops,
                  distinct_ops=run.distinct_ops, total_ops=run.total_ops)
