"""Serving on several replicas: a router in front, optionally separate prefill and decode pools.

All replicas run in one SimPy environment. Without disaggregation a router
sends each arriving request to one replica, which serves it to the end.
With disaggregation (``P:D``, as in Splitwise, Patel et al., ISCA 2024, and
DistServe, Zhong et al., OSDI 2024) a router sends the request to one of
``P`` prefill replicas, which runs its prompt and produces its first token;
its KV cache is then moved to one of ``D`` decode replicas (picked by the
same routing policy when the prefill ends) by a caller-given transfer
process, and the decode replica admits it with its prompt already cached and
generates the remaining tokens. TTFT ends with the prefill; the transfer
delays the second token (TPOT includes it). The prefill replica frees the
sequence's KV slots when its prefill ends (the transfer is taken to read a
copy); the decode replica allocates them on admission.

The queue's peak is the most requests waiting in all schedulers together,
sampled after every iteration of any replica (for one replica, the
single-replica replay's ``peak_waiting``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence as SequenceOf

import numpy as np
import pandas as pd
import simpy
from tqdm.auto import tqdm

from .config import ServingConfig, ServingError
from .replica import IterationCosts, Replica, arrivals
from .results import ReplayResult, iterations_frame, load_statement, served_requests_frame, serving_fields, summarise
from .router import Router, RouterKind
from .sequence import Sequence, check_kv_fits, trace_sequences

REPLICA_COLUMNS = ("pool", "replica", "requests", "completed", "iterations", "busy_s", "utilization",
                   "output_tokens", "peak_waiting", "kv_peak_tokens", "kv_capacity_tokens", "mean_batch_sequences")


@dataclass(frozen=True)
class Disaggregation:
    """Separate prefill and decode pools and how the KV cache moves between them.

    Attributes
    ----------
    prefill, decode:
        Replicas in each pool.
    transfer:
        ``transfer(env, prefill_replica, decode_replica, prompt_tokens)``: a SimPy process body that moves
        one request's KV cache in ``env`` (it ends when the cache has arrived).
    kv_bytes_per_token:
        KV-cache bytes of one token of one sequence in a whole replica (for the report).
    link:
        What the transfers go over, in words (for the report).
    """

    prefill: int
    decode: int
    transfer: Callable[[int, int, int], Any]
    kv_bytes_per_token: float
    link: str


@dataclass(frozen=True)
class ClusterResult(ReplayResult):
    """A replay on several replicas: ``requests``, ``iterations`` (with ``pool`` and ``replica``), the per-replica
    table ``replicas`` and the global ``summary``."""

    replicas: pd.DataFrame = field(default=None, repr=False)

    def write(self, outdir: str | Path) -> list[Path]:
        """Write ``requests.csv``, ``iterations.csv``, ``summary.json`` and ``replicas.csv`` into ``outdir``."""
        written = super().write(outdir)
        path = Path(outdir) / "replicas.csv"
        tmp = path.with_name(".replicas.csv.tmp")
        self.replicas.to_csv(tmp, index=False)
        tmp.replace(path)
        return written + [path]


class ClusterSimulator:
    """Replays a request trace on a pool of replicas (or a prefill and a decode pool).

    Parameters
    ----------
    requests:
        Request trace frame.
    costs:
        Iteration cost model of every replica, or one per replica (the pool's, or the prefill pool's then
        the decode pool's, in order).
    config:
        Serving options of every replica.
    kv_capacity_tokens:
        KV-cache slots of one replica.
    replicas:
        Replicas in the pool (ignored with ``disaggregation``).
    router:
        Routing policy (of each pool).
    disaggregation:
        Separate prefill and decode pools, or None.
    progress:
        Progress bar over completed requests (None: only on a terminal, after a second).
    labels:
        Figures copied to the front of the summary (model, system, ...).
    """

    def __init__(self, requests: pd.DataFrame, costs: IterationCosts | SequenceOf[IterationCosts], config: ServingConfig, *,
                 kv_capacity_tokens: int, replicas: int = 1, router: RouterKind | str = RouterKind.ROUND_ROBIN,
                 disaggregation: Disaggregation | None = None, progress: bool | None = None,
                 labels: dict[str, Any] | None = None):
        self.seqs = trace_sequences(requests)
        if replicas < 1:
            raise ServingError(f"replicas must be >= 1, got {replicas}")
        check_kv_fits(self.seqs, kv_capacity_tokens, f"a replica holds {kv_capacity_tokens}")
        self.config, self.costs, self.router_kind = config, costs, RouterKind(router)
        self.disagg = disaggregation
        self.progress, self.labels = progress, dict(labels or {})
        self.env = simpy.Environment()
        sizes = [replicas] if disaggregation is None else [disaggregation.prefill, disaggregation.decode]
        if disaggregation is not None and min(sizes) < 1:
            raise ServingError(f"disaggregation needs at least one prefill and one decode replica, got "
                               f"{disaggregation.prefill}:{disaggregation.decode}")
        per = list(costs) if isinstance(costs, (list, tuple)) else [costs] * sum(sizes)
        if len(per) != sum(sizes):
            raise ServingError(f"{len(per)} cost models for {sum(sizes)} replicas")
        names = ["serve"] if disaggregation is None else ["prefill", "decode"]
        hooks = [self._finished] if disaggregation is None else [self._prefilled, self._finished]
        self.pools: dict[str, list[Replica]] = {}
        first = 0
        for name, size, hook in zip(names, sizes, hooks):
            self.pools[name] = [Replica(self.env, i, per[first + i], config, kv_capacity_tokens, hook,
                                        self._iterated)
                                for i in range(size)]
            first += size
        self.routers = {pool: Router.create(self.router_kind) for pool in self.pools}
        self._entry = "serve" if disaggregation is None else "prefill"
        self._proxy: dict[int, Sequence] = {}  # id(prefill sequence) -> request
        self._transfers: list[tuple[int, float, float]] = []  # (request id, start ns, end ns)
        self._done = 0
        self._all_done = self.env.event()
        self._peak_waiting = 0
        self._bar = None

    def _iterated(self, replica: Replica) -> None:
        self._sample_queue()

    def _sample_queue(self) -> None:
        total = sum(len(r.scheduler.waiting) for pool in self.pools.values() for r in pool)
        if total > self._peak_waiting:
            self._peak_waiting = total

    def _add(self, pool: str, seq: Sequence, index: int | None = None) -> None:
        replicas = self.pools[pool]
        i = self.routers[pool].pick(replicas) if index is None else index
        replicas[i].add(seq)

    def _complete(self, n: int) -> None:
        self._done += n
        self._bar.update(n)
        if self._done == len(self.seqs):
            self._all_done.succeed()

    def _finished(self, replica: Replica, seqs: list[Sequence], now: float) -> None:
        self._complete(len(seqs))

    def _prefilled(self, replica: Replica, seqs: list[Sequence], now: float) -> None:
        done = 0
        for proxy in seqs:
            seq = self._proxy.pop(id(proxy))
            seq.first_token_ns = proxy.first_token_ns
            seq.preemptions += proxy.preemptions
            if seq.output_tokens == 1:
                seq.generated, seq.finish_ns = 1, now
                done += 1
            else:
                self.env.process(self._move(seq, replica.index))
        if done:
            self._complete(done)

    def _move(self, seq: Sequence, src: int):
        decode = self.pools["decode"]
        dst = self.routers["decode"].pick(decode)
        decode[dst].incoming += 1
        decode[dst].incoming_tokens += seq.prompt_tokens + 1
        start = self.env.now
        yield from self.disagg.transfer(self.env, src, dst, seq.prompt_tokens)
        self._transfers.append((seq.request_id, start, self.env.now))
        decode[dst].incoming -= 1
        decode[dst].incoming_tokens -= seq.prompt_tokens + 1
        seq.generated, seq.computed = 1, seq.prompt_tokens  # the first token is out; the prompt's K/V arrived
        self._add("decode", seq, dst)

    def _arrived(self, seq: Sequence) -> None:
        if self.disagg is None:
            self._add("serve", seq)
        else:
            proxy = Sequence(seq.request_id, seq.arrival_ns, seq.prompt_tokens, 1)
            self._proxy[id(proxy)] = seq
            self._add("prefill", proxy)

    def run(self) -> ClusterResult:
        """Run the replay to the last request's finish."""
        wall = time.perf_counter()
        disable = True if self.progress is False else (False if self.progress else None)
        self._bar = tqdm(total=len(self.seqs), desc="replaying", unit="req", leave=False, delay=1.0, disable=disable)
        try:
            for pool in self.pools.values():
                for r in pool:
                    self.env.process(r.serve())
            self.env.process(arrivals(self.env, self.seqs, self._arrived))
            self.env.run(until=self._all_done)
        finally:
            self._bar.close()
        return self._result(time.perf_counter() - wall)

    def _result(self, wall_s: float) -> ClusterResult:
        requests = served_requests_frame(self.seqs)
        frames, rows = [], []
        span = float(requests["finish_s"].max() - requests["arrival_s"].min())
        for pool, replicas in self.pools.items():
            for r in replicas:
                it = iterations_frame(r.iterations)
                it.insert(0, "replica", r.index)
                it.insert(0, "pool", pool)
                frames.append(it)
                busy = float(it["time_s"].sum())
                rows.append((pool, r.index, r.added, r.finished, len(it), busy, busy / span if span > 0 else math.nan,
                             int(it["output_tokens"].sum()), int(it["waiting"].max()) if len(it) else 0,
                             r.kv.peak_tokens, r.kv.capacity_tokens,
                             float(it["sequences"].mean()) if len(it) else math.nan))
        iterations = pd.concat(frames, ignore_index=True)
        summary: dict[str, Any] = dict(self.labels)
        summary.update({**serving_fields(self.config), "router": self.router_kind.value,
                        "replicas": sum(len(p) for p in self.pools.values()),
                        "prefill_replicas": len(self.pools.get("prefill", [])),
                        "decode_replicas": len(self.pools.get("decode", []))})
        summary.update(summarise(requests, iterations))
        summary["peak_waiting"] = self._peak_waiting
        summary["kv_peak_tokens"] = max(r.kv.peak_tokens for pool in self.pools.values() for r in pool)
        summary["load_statement"] = load_statement(summary)
        if self.disagg is not None:
            t = np.array([(e - s) * 1e-9 for _, s, e in self._transfers])
            moved = sum(s.prompt_tokens for s in self.seqs if s.output_tokens > 1)
            summary.update({"kv_transfers": len(t), "kv_transfer_bytes": moved * self.disagg.kv_bytes_per_token,
                            "kv_transfer_mean_s": float(t.mean()) if len(t) else math.nan,
                            "kv_transfer_p99_s": float(np.percentile(t, 99)) if len(t) else math.nan,
                            "kv_link": self.disagg.link})
        summary["wall_s"] = wall_s
        return ClusterResult(requests=requests, iterations=iterations, summary=summary, config=self.config,
                             replicas=pd.DataFrame(rows, columns=list(REPLICA_COLUMNS)))


def pool_sizes(text: str) -> tuple[int, int]:
    """Parse ``P:D`` (prefill and decode replicas, both >= 1)."""
    try:
        p, d = (int(x) for x in text.split(":"))
    except ValueError:
        raise ServingError(f"--disaggregate: expected P:D (e.g. 1:3), got {text!r}") from None
    if p < 1 or d < 1:
        raise ServingError(f"--disaggregate: both pools need at least one replica, got {text!r}")
    return p, d


__all__ = ["ClusterSimulator", "ClusterResult", "Disaggregation", "REPLICA_COLUMNS", "pool_sizes"]
