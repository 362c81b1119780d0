"""One serving replica in a SimPy environment: its scheduler, KV cache and iteration loop.

The loop asks the scheduler for the next iteration, holds for its cost,
applies it (tokens at the end of the iteration), and sleeps when there is
nothing to run until a request is added. Finished sequences are handed to a
callback, so a caller can count them or move them on (a prefill replica
hands its sequences to the decode pool). :class:`~.simulator.ServingSimulator`
runs one replica, :class:`~.cluster.ClusterSimulator` several;
:func:`arrivals` is the process that hands each request over at its
arrival time.
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol

import simpy

from .config import ServingConfig
from .interpolation import Cost
from .kv_cache import KvCache
from .scheduler import Scheduler
from .sequence import Sequence


class IterationCosts(Protocol):
    """What a replica needs of a cost model: an iteration's time (ns) and energy (J) by its composition."""

    def cost_of_key(self, key: tuple) -> Cost: ...


class Replica:
    """A replica serving the sequences added to it.

    Parameters
    ----------
    env:
        The shared environment (ns).
    index:
        Replica number (in its pool).
    costs:
        Iteration cost model.
    config:
        Serving options (batching policy and limits).
    kv_capacity_tokens:
        KV-cache slots of the replica.
    on_finish:
        Called as ``on_finish(replica, sequences, now_ns)`` after an iteration that finished sequences.
    on_iteration:
        Called as ``on_iteration(replica)`` after every iteration (before ``on_finish``).
    name:
        How error messages name the replica (None: ``replica INDEX``; empty: not at all).
    """

    def __init__(self, env, index: int, costs: IterationCosts, config: ServingConfig, kv_capacity_tokens: int,
                 on_finish: Callable[["Replica", list[Sequence], float], None],
                 on_iteration: Callable[["Replica"], None] | None = None, *, name: str | None = None):
        self.env, self.index, self.costs, self.on_finish = env, index, costs, on_finish
        self.on_iteration = on_iteration
        self.name = f"replica {index}" if name is None else name
        self.kv = KvCache(kv_capacity_tokens)
        self.scheduler = Scheduler.create(config, self.kv)
        self.iterations: list[tuple] = []  # the rows of results.iterations_frame
        self.added = 0
        self.finished = 0
        self.incoming = 0  # routed here but still on the way (a KV-cache transfer)
        self.incoming_tokens = 0
        self._wake: simpy.Event | None = None

    @property
    def outstanding(self) -> int:
        """Requests routed here and not finished (on the way, waiting or running)."""
        return self.added + self.incoming - self.finished

    @property
    def waiting(self) -> int:
        """Requests in the queue."""
        return len(self.scheduler.waiting)

    @property
    def kv_demand_tokens(self) -> int:
        """KV slots allocated plus the context of every waiting and incoming request."""
        return self.kv.used_tokens + sum(s.context for s in self.scheduler.waiting) + self.incoming_tokens

    def add(self, seq: Sequence) -> None:
        """Queue a sequence and wake the loop if it sleeps."""
        self.scheduler.add(seq)
        self.added += 1
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def serve(self):
        """SimPy process body: the iteration loop (runs until the environment stops)."""
        env, scheduler = self.env, self.scheduler
        while True:
            plan = scheduler.schedule()
            if plan is None:
                if scheduler.waiting and not scheduler.running_count:
                    where = f"{self.name}: " if self.name else ""
                    raise RuntimeError(f"{where}scheduler stalled with {len(scheduler.waiting)} "
                                       f"waiting requests and an idle server")
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            cost = self.costs.cost_of_key(plan.key())
            start = env.now
            kv_used = self.kv.used_tokens
            yield env.timeout(cost.time_ns)
            produced, finished = scheduler.complete(plan, env.now)
            self.iterations.append((start, env.now, len(plan.steps), plan.prefill_tokens, plan.decode_tokens,
                                    produced, cost.energy_j, kv_used, len(scheduler.waiting)))
            if self.on_iteration is not None:
                self.on_iteration(self)
            if finished:
                self.finished += len(finished)
                self.on_finish(self, finished, env.now)


def arrivals(env, seqs: Iterable[Sequence], deliver: Callable[[Sequence], None]):
    """SimPy process body: wait until each sequence's ``arrival_ns`` (in the given order) and call
    ``deliver(seq)``; sequences due at the same time are delivered without a wait between them."""
    for seq in seqs:
        delay = seq.arrival_ns - env.now
        if delay > 0:
            yield env.timeout(delay)
        deliver(seq)
