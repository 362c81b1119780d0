"""Batching policies: which sequences run in the next iteration.

A scheduler holds the waiting queue (FIFO by arrival) and the running
sequences, and owns the KV cache's allocation. :meth:`Scheduler.schedule`
returns the next :class:`IterationPlan` (or None when there is nothing to
run); :meth:`Scheduler.complete` applies it once its time has passed.
Policies register themselves by :class:`Batching` value.

Static batching
    When the server is free, up to ``max_batch`` waiting requests (FIFO,
    stopping at the first that does not fit) form a batch; each reserves
    its peak KV (prompt + output - 1 tokens) up front, so static batching
    never preempts. The batch's prompts are prefilled in iterations of whole
    prompts of at most ``max_batched_tokens`` tokens together (a longer prompt
    alone), then every decode step runs with all unfinished sequences of the
    batch (finished ones do no work). The next batch starts when the last
    sequence finishes.

Continuous batching (Orca / vLLM style)
    Every iteration first gives each running sequence (oldest admission
    first) its next step: one token for a decode, and with chunked prefill
    the next chunk of an unfinished prompt, at most the remaining token
    budget. Then waiting requests are admitted (FIFO, head of line blocks)
    while fewer than ``max_batch`` sequences run, tokens remain in the
    budget and the KV cache can hold the request's whole context (admission
    control: a request that does not fit waits). Without chunked prefill an
    admitted prompt runs whole in one iteration and must fit the remaining
    budget, except that a prompt longer than the whole budget may run as the
    iteration's only prefill.

    Preemption (vLLM recompute policy): KV slots are taken one token at a
    time as decode steps grow a sequence. When a running sequence needs a
    slot and none is free, the most recently admitted running sequence
    (possibly the one needing the slot) is preempted: its KV slots are
    freed, it goes to the front of the waiting queue, and when re-admitted
    its prompt and the tokens it already generated are prefilled again;
    that prefill produces its next token. Preemptions are counted per
    request.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from .config import Batching, ServingConfig
from .kv_cache import KvCache
from .sequence import IterationPlan, Sequence


class Scheduler:
    """Base of the batching policies (registered by :class:`Batching` value).

    Parameters
    ----------
    config:
        Serving options.
    kv:
        The KV cache the scheduler allocates from.
    """

    registry: ClassVar[dict[Batching, type["Scheduler"]]] = {}
    batching: ClassVar[Batching]

    def __init_subclass__(cls, batching: Batching, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.batching = batching
        Scheduler.registry[batching] = cls

    @staticmethod
    def create(config: ServingConfig, kv: KvCache) -> "Scheduler":
        """A scheduler of the policy ``config.batching``."""
        return Scheduler.registry[config.batching](config, kv)

    def __init__(self, config: ServingConfig, kv: KvCache):
        self.config = config
        self.kv = kv
        self.waiting: deque[Sequence] = deque()
        self.preemptions = 0

    def add(self, seq: Sequence) -> None:
        """A request arrives."""
        self.waiting.append(seq)

    @property
    def running_count(self) -> int:
        raise NotImplementedError

    def schedule(self) -> IterationPlan | None:
        """The next iteration, or None when nothing can run until a request arrives."""
        raise NotImplementedError

    def complete(self, plan: IterationPlan, now_ns: float) -> tuple[int, list[Sequence]]:
        """Apply ``plan`` at ``now_ns``: (tokens produced, sequences finished)."""
        produced = 0
        finished = []
        for seq, q in plan.steps:
            if seq.advance(q, now_ns):
                produced += 1
                if seq.finished:
                    finished.append(seq)
        self._retire(finished)
        return produced, finished

    def _retire(self, finished: list[Sequence]) -> None:
        raise NotImplementedError


class StaticScheduler(Scheduler, batching=Batching.STATIC):
    """Request-level batching: a batch runs to completion before the next one starts."""

    def __init__(self, config: ServingConfig, kv: KvCache):
        super().__init__(config, kv)
        self.batch: list[Sequence] = []
        self._reserved = 0

    @property
    def running_count(self) -> int:
        return sum(1 for s in self.batch if not s.finished)

    def _form_batch(self) -> None:
        while self.waiting and len(self.batch) < self.config.max_batch:
            need = self.waiting[0].peak_kv_tokens
            if not self.kv.can_allocate(need):
                break
            seq = self.waiting.popleft()
            self.kv.allocate(need)
            seq.allocated = need
            self._reserved += need
            self.batch.append(seq)

    def schedule(self) -> IterationPlan | None:
        if not self.batch:
            self._form_batch()
            if not self.batch:
                return None
        prefill = [s for s in self.batch if s.generated == 0]
        steps: list[tuple[Sequence, int]] = []
        if prefill:
            budget = self.config.max_batched_tokens
            for seq in prefill:
                if steps and seq.pending > budget:
                    break
                steps.append((seq, seq.pending))
                budget -= seq.pending
        else:
            steps = [(s, 1) for s in self.batch if not s.finished]
        return IterationPlan.build(steps)

    def _retire(self, finished: list[Sequence]) -> None:
        if all(s.finished for s in self.batch):
            self.kv.release(self._reserved)
            for s in self.batch:
                s.allocated = 0
            self._reserved = 0
            self.batch = []


class ContinuousScheduler(Scheduler, batching=Batching.CONTINUOUS):
    """Iteration-level batching with a token budget, optional chunked prefill and recompute preemption."""

    def __init__(self, config: ServingConfig, kv: KvCache):
        super().__init__(config, kv)
        self.running: list[Sequence] = []  # in admission order

    @property
    def running_count(self) -> int:
        return len(self.running)

    def _preempt_last(self) -> Sequence:
        victim = self.running.pop()
        self.kv.release(victim.preempt())
        self.waiting.appendleft(victim)
        self.preemptions += 1
        return victim

    def schedule(self) -> IterationPlan | None:
        cfg = self.config
        chunked = cfg.chunked_prefill
        kv = self.kv
        budget = cfg.max_batched_tokens
        steps: list[tuple[Sequence, int]] = []
        prefill_scheduled = False
        running = self.running
        i = 0
        while i < len(running) and budget > 0:
            seq = running[i]
            context = seq.prompt_tokens + seq.generated
            need = context - seq.allocated
            if need > 0:
                victim = None
                while need > kv.capacity_tokens - kv.used_tokens and victim is not seq:
                    victim = self._preempt_last()
                if victim is seq:
                    break  # seq was the most recently admitted: everything before it is scheduled
                kv.allocate(need)
                seq.allocated += need
            pending = context - seq.computed
            if pending == 1 or chunked:
                q = pending if pending <= budget else budget
            elif pending <= budget or not (steps or prefill_scheduled):
                q = pending
            else:
                i += 1
                continue
            if not (seq.generated and pending == 1):
                prefill_scheduled = True
            steps.append((seq, q))
            budget -= q
            i += 1
        while self.waiting and budget > 0 and len(self.running) < cfg.max_batch:
            seq = self.waiting[0]
            need = seq.context
            if not self.kv.can_allocate(need):
                break  # admission control: wait for KV space
            # the whole context, unless its prompt was prefilled elsewhere (disaggregated serving: 1 token)
            todo = need - seq.computed
            if cfg.chunked_prefill:
                q = min(todo, budget)
            elif todo <= budget or (todo > cfg.max_batched_tokens and not prefill_scheduled):
                q = todo
            else:
                break
            self.waiting.popleft()
            self.kv.allocate(need)
            seq.allocated = need
            self.running.append(seq)
            steps.append((seq, q))
            prefill_scheduled = prefill_scheduled or seq.computed == 0
            budget -= q
        if not steps:
            return None
        return IterationPlan.build(steps)

    def _retire(self, finished: list[Sequence]) -> None:
        if not finished:
            return
        for seq in finished:
            self.kv.release(seq.allocated)
            seq.allocated = 0
        self.running = [s for s in self.running if not s.finished]
