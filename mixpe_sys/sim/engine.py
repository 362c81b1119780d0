"""The layer-by-layer engine: run a sequence of ops, each from idle to drained.

Every op boundary is a barrier (every unit idle, buffers drained), so an op's
cost depends only on its :meth:`~mixpe_sys.workload.ops.Op.cost_key` and the
design. The engine therefore simulates each distinct op once and reuses its
cost for every identical op (identical layers, identical decode-step ops);
``reuse=False`` simulates every op and gives the same results exactly.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from typing import Iterable

import pandas as pd
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..hw.config import AcceleratorConfig
from ..hw.launch import LaunchMode, launch_mode
from ..workload.ops import Op
from ..report import utilization_frame
from ..metrics.records import COST_COLUMNS, OP_IDENTITY_COLUMNS, OpCost, cost_row
from .launch import with_launch
from .cost_store import CostStore, design_hash, open_store
from .op_sim import simulate_op

#: The op-record columns of a run: which op it is, then its cost (one schema, :mod:`mixpe_sys.metrics.records`).
OP_COLUMNS = OP_IDENTITY_COLUMNS + COST_COLUMNS


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
        """Simulate the distinct ops among ``ops`` that are not cached yet, in parallel when
        ``workers`` > 1 and more than one is missing (``progress``: a bar over them, None = on a
        terminal after a second)."""
        missing: dict = {}
        for op in ops:
            key = op.cost_key()
            if key not in self.costs and key not in missing:
                missing[key] = op
        if self._store is not None and missing:
            for key, stored in self._store.get_many(self._dhash, missing).items():
                self._keep(key, stored)
                del missing[key]
        if len(missing) < 2 or self.workers < 2 or multiprocessing.current_process().daemon:
            for op in missing.values():
                self.cost(op)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers)
        # largest first, so the last op to finish is a small one
        keys = sorted(missing, key=lambda k: -(missing[k].macs + missing[k].elements))
        ops = [missing[k] for k in keys]
        bar = tqdm(total=len(ops), desc="simulating distinct ops", unit="op", leave=False, delay=1.0,
                   disable=True if progress is False else (False if progress else None))
        devices = {}
        for key, device in zip(keys, self._pool.map(simulate_op, ops, repeat(self.design), repeat(self.fast_forward))):
            devices[key] = device
            self._keep(key, device)
            self.simulated += 1
            bar.update(1)
        bar.close()
        if self._store is not None:
            self._store.put_many(self._dhash, devices)

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


@dataclass(frozen=True)
class OpsRun:
    """Per-op rows of an engine run plus counters."""

    ops: pd.DataFrame
    utilization: pd.DataFrame  # one row per unit class: busy_s over the run, utilization = busy / device time
    simulated_ops: int
    distinct_ops: int
    total_ops: int


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
        Show a progress bar (None: only on a terminal, after a second).
    total:
        Number of ops, for the progress bar.
    cache:
        A cost cache to share between runs on the same design.
    launch:
        How kernels are issued (``graph`` or ``eager``); default the cache's, or ``graph``.

    Returns
    -------
    OpsRun
        One row per op (times in s from the start of the run).
    """
    cache = cache if cache is not None else CostCache(design, launch=launch or LaunchMode.GRAPH)
    if launch is not None and launch_mode(launch) is not cache.launch:
        raise ConfigError(f"field 'launch': {launch_mode(launch).value}, but the cost cache is for "
                          f"{cache.launch.value}")
    rows = []
    t_ns = device_ns = 0.0
    uses: dict[int, list] = {}  # id(cost) -> [cost, times used]
    before = cache.simulated
    bar = tqdm(ops, total=total, desc="simulating ops", unit="op", disable=(False if progress else None)
               if progress is not False else True, delay=1.0, leave=False)
    for index, op in enumerate(bar):
        c = cache.cost(op, reuse)
        start = t_ns
        t_ns += c.time_ns
        device_ns += c.device_time_ns
        used = uses.get(id(c))
        if used is None:
            uses[id(c)] = [c, 1]
        else:
            used[1] += 1
        rows.append((index, op.phase.value, op.step, op.layer, op.name, op.kind.value, op.m, op.n, op.k, op.batch,
                     op.elements, start * 1e-9, t_ns * 1e-9) + cost_row(c))
    bar.close()
    df = pd.DataFrame(rows, columns=list(OP_COLUMNS))
    busy: dict[str, float] = {}
    for c, n in uses.values():
        for unit, b in c.unit_busy_ns:
            busy[unit] = busy.get(unit, 0.0) + n * b
    return OpsRun(ops=df, utilization=utilization_frame(busy, device_ns), simulated_ops=cache.simulated - before, distinct_ops=len(cache.costs),
                  total_ops=len(rows))
