"""Routers: which replica serves an arriving request.

A router sees the replicas when the request arrives (or, for the decode
pool of disaggregated serving, when its prefill is done) and picks one;
ties go to the lowest index, so routing is deterministic.

``round_robin``
    Request ``i`` (in arrival order) to replica ``i mod R``.
``least_outstanding``
    The replica with the fewest requests routed to it and not finished
    (waiting or running).
``least_kv``
    The replica with the least KV-cache demand: tokens allocated in its
    cache plus the context tokens of the requests waiting in its queue.
"""

from __future__ import annotations

import enum
from typing import ClassVar, Protocol, Sequence


class RouterKind(str, enum.Enum):
    """Routing policy of a pool of replicas."""

    ROUND_ROBIN = "round_robin"
    LEAST_OUTSTANDING = "least_outstanding"
    LEAST_KV = "least_kv"


class ReplicaLoad(Protocol):
    """What a router reads of a replica."""

    @property
    def outstanding(self) -> int: ...

    @property
    def kv_demand_tokens(self) -> int: ...


class Router:
    """Base of the routing policies (registered by :class:`RouterKind`)."""

    registry: ClassVar[dict[RouterKind, type["Router"]]] = {}
    kind: ClassVar[RouterKind]

    def __init_subclass__(cls, kind: RouterKind, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.kind = kind
        Router.registry[kind] = cls

    @staticmethod
    def create(kind: RouterKind | str) -> "Router":
        """A router of policy ``kind``."""
        return Router.registry[RouterKind(kind)]()

    def pick(self, replicas: Sequence[ReplicaLoad]) -> int:
        """Index of the replica for the next request."""
        raise NotImplementedError


class RoundRobinRouter(Router, kind=RouterKind.ROUND_ROBIN):
    def __init__(self):
        self._next = 0

    def pick(self, replicas: Sequence[ReplicaLoad]) -> int:
        i = self._next % len(replicas)
        self._next += 1
        return i


class LeastOutstandingRouter(Router, kind=RouterKind.LEAST_OUTSTANDING):
    def pick(self, replicas: Sequence[ReplicaLoad]) -> int:
        return min(range(len(replicas)), key=lambda i: (replicas[i].outstanding, i))


class LeastKvRouter(Router, kind=RouterKind.LEAST_KV):
    def pick(self, replicas: Sequence[ReplicaLoad]) -> int:
        return min(range(len(replicas)), key=lambda i: (replicas[i].kv_demand_tokens, i))
