"""A bounded least-recently-used memo with hit and miss counts (the iteration costs of a replay)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class LruMemo(Generic[V]):
    """``get(key, compute)``: the value stored for ``key``, or ``compute()`` stored under it; at most
    ``size`` values are kept, the least recently used dropped first."""

    def __init__(self, size: int):
        self.size = size
        self._values: OrderedDict = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The value of ``key``, computed on a miss."""
        hit = self._values.get(key)
        if hit is not None:
            self.hits += 1
            self._values.move_to_end(key)
            return hit
        self.misses += 1
        value = self._values[key] = compute()
        if len(self._values) > self.size:
            self._values.popitem(last=False)
        return value


class IterationMemo:
    """Iteration costs memoised by composition key: subclasses call ``__init__`` and define
    ``compute_iteration(key)``; ``cost_of_key`` looks a key up, computing it on a miss."""

    def __init__(self, size: int):
        self.iterations: LruMemo = LruMemo(size)

    def compute_iteration(self, key):
        """The cost of the iteration ``key`` (computed on a memo miss)."""
        raise NotImplementedError

    def cost_of_key(self, key):
        """Cost of an iteration given its composition key
        (see :func:`mixpe_sys.serving.iteration_ops.iteration_key`)."""
        return self.iterations.get(key, lambda: self.compute_iteration(key))

    @property
    def iteration_hits(self) -> int:
        """Iterations whose cost was found memoised."""
        return self.iterations.hits

    @property
    def iteration_misses(self) -> int:
        """Iterations whose cost was computed."""
        return self.iterations.misses
