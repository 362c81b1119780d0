"""Serving options: batching policy, batch limits, chunked prefill, how iteration costs are found."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..config_base import ConfigBase, param
from ..errors import ConfigError, MixpeError
from ..hw.launch import LaunchMode
from ..workload.attention import AttentionMode


class ServingError(MixpeError):
    """A request trace cannot be served as configured (e.g. a request never fits the KV cache)."""


class Batching(str, enum.Enum):
    """How requests are grouped into iterations."""

    STATIC = "static"  # a batch runs prefill and every decode step to completion before the next batch
    CONTINUOUS = "continuous"  # iteration-level scheduling (Orca / vLLM): sequences join and leave every step


class CostModel(str, enum.Enum):
    """How an iteration's op costs are obtained."""

    EXACT = "exact"  # every distinct op is simulated on the hardware model
    INTERPOLATED = "interpolated"  # large ops from simulated anchors, scaled by their exact roofline


@dataclass(frozen=True)
class ServingConfig(ConfigBase):
    """Options of a serving replay.

    ``max_batched_tokens`` bounds the new tokens (prefill + decode) of one
    iteration. Without chunked prefill a prompt is never split: a prompt
    longer than the whole budget runs as the only prefill of its iteration,
    which then exceeds the budget. Static batching uses the budget to split a
    batch's prefill into iterations of whole prompts.
    """

    batching: Batching = param(Batching.CONTINUOUS, help="static or continuous (iteration-level) batching")
    max_batch: int = param(32, help="most sequences in one batch (static) or running at once (continuous)",
                           unit="sequences", ge=1)
    max_batched_tokens: int = param(4096, help="most new tokens (prefill + decode) in one iteration",
                                    unit="tokens", ge=1)
    chunked_prefill: bool = param(False, help="split prompts across iterations to fill the token budget "
                                              "(continuous batching only)")
    cost_model: CostModel = param(CostModel.EXACT, help="exact (simulate every distinct op) or interpolated "
                                                        "(simulate anchor shapes, interpolate between them)")
    shape_buckets: int = param(16, help="pad each iteration's token count and each sequence's new tokens and KV "
                                        "length up to one of this many sizes per doubling (adding under "
                                        "1/N), as serving runtimes pad to compiled shapes and whole KV "
                                        "blocks; the padded shapes are simulated exactly; 0 = unpadded",
                               ge=0, le=1024)
    launch: LaunchMode = param(LaunchMode.GRAPH, help="how each iteration's kernels are issued on a design with "
                               "launch costs: graph (replayed from CUDA graphs, as serving runtimes do) or "
                               "eager (each kernel dispatched from the host and waited for)")
    attention: AttentionMode = param(AttentionMode.FUSED, help="fused (one FlashAttention-style kernel per layer "
                                     "and sequence) or unfused (QK^T, softmax and PV as three kernels, the "
                                     "scores through DRAM)")
    exact_tokens: int = param(64, help="interpolated cost model: token counts and KV lengths up to this are "
                                       "always simulated exactly", unit="tokens", ge=1)
    anchors_per_octave: int = param(1, help="interpolated cost model: anchor sizes per doubling above "
                                            "exact_tokens", ge=1, le=64)

    def validate(self) -> None:
        if self.max_batched_tokens < self.max_batch:
            # as vLLM's scheduler config: max_num_batched_tokens must be >= max_num_seqs, or running
            # sequences could not all take their decode step in one iteration
            raise ConfigError(f"field 'max_batched_tokens': {self.max_batched_tokens} tokens per iteration is fewer "
                              f"than max_batch ({self.max_batch}): every running sequence needs one token of "
                              f"budget per decode step")
        if self.chunked_prefill and self.batching is Batching.STATIC:
            raise ConfigError("field 'chunked_prefill': only available with continuous batching")
