"""The KV cache: what DRAM holds after the weights, counted in tokens.

Capacity is the design's DRAM capacity minus the model's weight bytes. The
weights are stored at the scheme's weight bits, plus one scale and one zero
point per ``group_size`` weights when they are group-quantized (one per
``hidden_size`` weights with ``group_size`` 0); every parameter counts,
embeddings included. One token of one sequence takes
``2 * num_layers * kv_dim * kv_bits / 8`` bytes (K and V, every layer).
Space is allocated per token (no block rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from ..hw.config import AcceleratorConfig
from ..workload.models import ModelSpec
from ..workload.quant import QuantScheme
from .config import ServingError


def weight_bytes(model: ModelSpec, quant: QuantScheme) -> int:
    """Bytes of all model weights at the scheme's precision, group scales and zero points included."""
    params = model.total_params
    total_bits = params * quant.weight_bits
    if quant.quantized_weights:
        per_group = quant.group_size or model.hidden_size
        total_bits += ceil(params / per_group) * (quant.scale_bits + quant.zero_bits)
    return ceil(total_bits / 8)


def kv_bytes_per_token(model: ModelSpec, quant: QuantScheme) -> float:
    """KV-cache bytes one token of one sequence takes: ``2 * layers * kv_dim * kv_bits / 8``."""
    return model.kv_cache_elements_per_token * quant.kv_bits / 8


@dataclass(frozen=True)
class KvBudget:
    """How DRAM is split between weights and the KV cache (bytes, tokens)."""

    dram_capacity_bytes: int
    weight_bytes: int
    kv_bytes_per_token: float
    capacity_tokens: int

    @property
    def kv_capacity_bytes(self) -> int:
        """DRAM bytes left for the KV cache."""
        return self.dram_capacity_bytes - self.weight_bytes


def kv_budget(model: ModelSpec, design: AcceleratorConfig, quant: QuantScheme) -> KvBudget:
    """The KV budget of ``model`` on ``design`` with ``quant``'s weight and KV-cache widths.

    Raises
    ------
    ServingError
        When the weights alone do not fit the DRAM or leave no room for one token.
    """
    cap = design.dram.capacity_bytes
    weights = weight_bytes(model, quant)
    per_token = kv_bytes_per_token(model, quant)
    tokens = int((cap - weights) // per_token) if cap > weights else 0
    if tokens < 1:
        raise ServingError(f"DRAM capacity {cap} bytes leaves no room for the KV cache of {model.name}: "
                           f"weights take {weights} bytes ({quant.name}), one token {per_token:g} bytes")
    return KvBudget(dram_capacity_bytes=cap, weight_bytes=weights, kv_bytes_per_token=per_token,
                    capacity_tokens=tokens)


class KvCache:
    """Token slots of the KV cache, shared by all running sequences.

    Parameters
    ----------
    capacity_tokens:
        Tokens (of all sequences together) the cache holds.
    """

    def __init__(self, capacity_tokens: int):
        if capacity_tokens < 1:
            raise ValueError(f"capacity_tokens must be >= 1, got {capacity_tokens}")
        self.capacity_tokens = capacity_tokens
        self.used_tokens = 0
        self.peak_tokens = 0

    @property
    def free_tokens(self) -> int:
        """Slots not allocated."""
        return self.capacity_tokens - self.used_tokens

    def can_allocate(self, tokens: int) -> bool:
        """True when ``tokens`` more slots are free."""
        return tokens <= self.capacity_tokens - self.used_tokens

    def allocate(self, tokens: int) -> None:
        """Take ``tokens`` slots (the caller checked :meth:`can_allocate`)."""
        if tokens > self.free_tokens:
            raise RuntimeError(f"KV cache overflow: {tokens} tokens requested, {self.free_tokens} free")
        self.used_tokens += tokens
        self.peak_tokens = max(self.peak_tokens, self.used_tokens)

    def release(self, tokens: int) -> None:
        """Give back ``tokens`` slots."""
        if tokens > self.used_tokens:
            raise RuntimeError(f"KV cache underflow: releasing {tokens} of {self.used_tokens} used tokens")
        self.used_tokens -= tokens
