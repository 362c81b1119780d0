"""A request's progress through the server, and the plan of one iteration."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..workload.requests import requests_from_frame
from .config import ServingError
from .iteration_ops import SeqWork, iteration_key


class Sequence:
    """A request being served.

    The sequence's context is its prompt plus the tokens generated so far;
    ``computed`` of them have their K/V in the cache. Each iteration processes
    some of the ``pending = context - computed`` tokens; when the last one is
    processed the sequence produces a token (its context grows by one). A
    decode step is the case ``pending == 1`` after the first token. After a
    preemption ``computed`` drops to 0, so the prompt and the tokens generated
    so far are prefilled again (recompute), and that prefill produces the next
    token.

    A request with 0 output tokens is served as one with 1 (its prefill
    produces a token): ``output_tokens`` is at least 1.
    """

    __slots__ = ("request_id", "arrival_ns", "prompt_tokens", "output_tokens", "generated", "computed",
                 "allocated", "preemptions", "first_token_ns", "finish_ns")

    def __init__(self, request_id: int, arrival_ns: float, prompt_tokens: int, output_tokens: int):
        self.request_id = request_id
        self.arrival_ns = arrival_ns
        self.prompt_tokens = prompt_tokens
        self.output_tokens = max(1, output_tokens)
        self.generated = 0
        self.computed = 0
        self.allocated = 0  # KV-cache token slots held
        self.preemptions = 0
        self.first_token_ns: float | None = None
        self.finish_ns: float | None = None

    @property
    def context(self) -> int:
        """Tokens whose K/V must be cached to produce the next token."""
        return self.prompt_tokens + self.generated

    @property
    def pending(self) -> int:
        """Context tokens not yet processed."""
        return self.context - self.computed

    @property
    def peak_kv_tokens(self) -> int:
        """KV slots held at the last step: prompt + output - 1 (the last token is never cached)."""
        return self.prompt_tokens + self.output_tokens - 1

    @property
    def finished(self) -> bool:
        return self.finish_ns is not None

    def advance(self, q: int, now_ns: float) -> bool:
        """Record that ``q`` pending tokens were processed by ``now_ns``; True when a token was produced."""
        self.computed += q
        if self.computed < self.context:
            return False
        self.generated += 1
        if self.first_token_ns is None:
            self.first_token_ns = now_ns
        if self.generated == self.output_tokens:
            self.finish_ns = now_ns
        return True

    def preempt(self) -> int:
        """Drop the cached K/V (to be recomputed); returns the slots freed."""
        freed = self.allocated
        self.allocated = 0
        self.computed = 0
        self.preemptions += 1
        return freed

    def __repr__(self) -> str:
        return (f"Sequence(id={self.request_id}, prompt={self.prompt_tokens}, out={self.output_tokens}, "
                f"generated={self.generated}, computed={self.computed}, allocated={self.allocated})")


def trace_sequences(requests: pd.DataFrame) -> list[Sequence]:
    """The trace's requests as sequences in arrival order (stable; arrival times in ns).

    Raises
    ------
    ServingError
        When the trace has no requests.
    """
    records = requests_from_frame(requests)
    if not records:
        raise ServingError("the request trace has no requests")
    records.sort(key=lambda r: r.arrival_s)
    return [Sequence(r.request_id, r.arrival_s * 1e9, r.prompt_tokens, r.output_tokens) for r in records]


def check_kv_fits(seqs: list[Sequence], capacity_tokens: int, holder: str) -> None:
    """Raise :class:`ServingError` for the first sequence whose peak KV context exceeds ``capacity_tokens``
    (token slots); ``holder`` ends the message (``... but HOLDER``)."""
    for seq in seqs:
        if seq.peak_kv_tokens > capacity_tokens:
            raise ServingError(f"request {seq.request_id} needs {seq.peak_kv_tokens} KV-cache tokens "
                               f"(prompt {seq.prompt_tokens} + output {seq.output_tokens} - 1) but {holder}")


@dataclass(frozen=True)
class IterationPlan:
    """Which sequences an iteration runs and how many new tokens each."""

    steps: tuple[tuple[Sequence, int], ...]
    prefill_tokens: int
    decode_tokens: int

    @classmethod
    def build(cls, steps: list[tuple[Sequence, int]]) -> "IterationPlan":
        total = decode = 0
        for seq, q in steps:
            total += q
            if seq.generated and seq.computed + 1 == seq.prompt_tokens + seq.generated:
                decode += q
        return cls(steps=tuple(steps), prefill_tokens=total - decode, decode_tokens=decode)

    def works(self) -> list[SeqWork]:
        """The per-sequence work, for the cost model."""
        out = []
        for seq, q in self.steps:
            kv_len = seq.computed + q
            out.append(SeqWork(q, kv_len, kv_len == seq.prompt_tokens + seq.generated))
        return out

    def key(self) -> tuple[SeqWork, ...]:
        return iteration_key(self.works())
