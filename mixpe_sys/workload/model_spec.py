"""The :class:`ModelSpec` of a decoder-only transformer and its enums.

A spec holds the shape the simulator sizes its work from (widths, heads,
layers, vocabulary, FFN and norm kinds) and derives parameter counts from it.
Specs are usually built by :func:`mixpe_sys.workload.models.load_model`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from ..config_base import ConfigBase, param
from ..errors import ConfigError


class ModelFamily(str, enum.Enum):
    """Model family; selects how a Hugging Face config is read."""

    LLAMA = "llama"
    MISTRAL = "mistral"
    OPT = "opt"


class Activation(str, enum.Enum):
    """FFN activation function."""

    SILU = "silu"
    RELU = "relu"
    GELU = "gelu"


class NormKind(str, enum.Enum):
    """Normalisation layer: RMSNorm (scale only) or LayerNorm (scale and shift)."""

    RMSNORM = "rmsnorm"
    LAYERNORM = "layernorm"


class PositionEncoding(str, enum.Enum):
    """Rotary embeddings (no weights) or a learned absolute position table."""

    ROPE = "rope"
    LEARNED = "learned"


@dataclass(frozen=True)
class ModelSpec(ConfigBase):
    """Shape of a decoder-only transformer: what the simulator needs to size its work.

    Weight parameter count (elements; ``h`` hidden, ``f`` FFN width, ``q`` =
    heads * head_dim, ``kv`` = KV heads * head_dim, ``V`` vocabulary, ``L`` layers)::

        attention = 2*h*q + 2*h*kv           (+ q + 2*kv + h if attention_bias)
        ffn       = 3*h*f if gated_ffn else 2*h*f   (+ 2*f + h, or f + h, if ffn_bias)
        norm      = h for RMSNorm, 2*h for LayerNorm; two per layer
        layer     = attention + ffn + 2*norm
        total     = L*layer + V*h (token embedding) + rows*h (learned positions)
                    + norm (final, if final_norm) + V*h (LM head, unless tied)

    Llama-2-7B: 32 * 202,383,360 + 2 * 32000 * 4096 + 4096 = 6,738,415,616.
    """

    name: str = param(help="short model name, e.g. llama-2-7b")
    family: ModelFamily = param(help="model family: llama, mistral or opt")
    hidden_size: int = param(help="model (residual stream) width", unit="elements", ge=1)
    intermediate_size: int = param(help="FFN inner width", unit="elements", ge=1)
    num_layers: int = param(help="number of decoder layers", unit="layers", ge=1)
    num_heads: int = param(help="query attention heads per layer", unit="heads", ge=1)
    num_kv_heads: int = param(help="key/value heads per layer (< num_heads: grouped-query attention)",
                              unit="heads", ge=1)
    vocab_size: int = param(help="vocabulary size", unit="tokens", ge=1)
    max_position_embeddings: int = param(help="longest sequence the model was trained for", unit="tokens", ge=1)
    head_dim: int = param(0, help="width of one attention head (0 = hidden_size // num_heads)",
                          unit="elements", ge=0)
    gated_ffn: bool = param(True, help="gated FFN with gate+up+down projections (SwiGLU); "
                                       "false = two projections (fc1, fc2)")
    activation: Activation = param(Activation.SILU, help="FFN activation: silu, relu or gelu")
    norm: NormKind = param(NormKind.RMSNORM, help="normalisation layer: rmsnorm or layernorm")
    tie_word_embeddings: bool = param(False, help="LM head shares the token-embedding weights")
    attention_bias: bool = param(False, help="Q/K/V/O projections carry a bias vector")
    ffn_bias: bool = param(False, help="FFN projections carry a bias vector")
    pre_norm: bool = param(True, help="normalise before attention and FFN (pre-LN); false = post-LN")
    final_norm: bool = param(True, help="a norm after the last layer, before the LM head")
    position_encoding: PositionEncoding = param(PositionEncoding.ROPE,
                                                help="rope (no weights) or learned absolute table")
    position_table_rows: int = param(0, help="rows of the learned position table (0 with rope)",
                                     unit="rows", ge=0)
    sliding_window: int = param(0, help="attention window (0 = full causal attention)", unit="tokens", ge=0)
    hf_repo: str = param("", help="Hugging Face repo id the config came from ('' if unknown)")

    def __post_init__(self) -> None:
        if self.head_dim == 0 and _is_count(self.hidden_size) and _is_count(self.num_heads):
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        super().__post_init__()

    def validate(self) -> None:
        if not self.name.strip():
            raise ConfigError("field 'name': must not be empty")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"field 'num_heads': must divide hidden_size ({self.hidden_size}), "
                              f"got {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"field 'num_kv_heads': must divide the number of attention heads "
                              f"({self.num_heads}), got {self.num_kv_heads}")
        if self.head_dim < 1:
            raise ConfigError(f"field 'head_dim': must be >= 1 elements, got {self.head_dim}")
        if self.position_encoding is PositionEncoding.LEARNED:
            if self.position_table_rows < self.max_position_embeddings:
                raise ConfigError(f"field 'position_table_rows': a learned table needs at least "
                                  f"max_position_embeddings ({self.max_position_embeddings}) rows, "
                                  f"got {self.position_table_rows}")
        elif self.position_table_rows:
            raise ConfigError(f"field 'position_table_rows': must be 0 with rotary embeddings, "
                              f"got {self.position_table_rows}")

    @property
    def q_dim(self) -> int:
        """Width of the query projection output, heads * head_dim (elements)."""
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the key (or value) projection output, KV heads * head_dim (elements)."""
        return self.num_kv_heads * self.head_dim

    @property
    def gqa_group_size(self) -> int:
        """Query heads sharing one KV head (1 = multi-head attention)."""
        return self.num_heads // self.num_kv_heads

    @property
    def norm_params(self) -> int:
        """Weights of one norm layer (elements)."""
        return self.hidden_size * (2 if self.norm is NormKind.LAYERNORM else 1)

    @property
    def attention_params_per_layer(self) -> int:
        """Q, K, V and O projection weights (and biases) of one layer (elements)."""
        h, q, kv = self.hidden_size, self.q_dim, self.kv_dim
        bias = q + 2 * kv + h if self.attention_bias else 0
        return 2 * h * q + 2 * h * kv + bias

    @property
    def ffn_params_per_layer(self) -> int:
        """FFN projection weights (and biases) of one layer (elements)."""
        h, f = self.hidden_size, self.intermediate_size
        if self.gated_ffn:
            return 3 * h * f + (2 * f + h if self.ffn_bias else 0)
        return 2 * h * f + (f + h if self.ffn_bias else 0)

    @property
    def layer_params(self) -> int:
        """Weights of one decoder layer: attention + FFN + two norms (elements)."""
        return self.attention_params_per_layer + self.ffn_params_per_layer + 2 * self.norm_params

    @property
    def embedding_params(self) -> int:
        """Token embedding plus learned position table (elements)."""
        return (self.vocab_size + self.position_table_rows) * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """LM head weights not shared with the embedding (elements; 0 if tied)."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def total_params(self) -> int:
        """All weights: layers, embeddings, final norm and LM head (elements; see class docstring)."""
        final = self.norm_params if self.final_norm else 0
        return self.num_layers * self.layer_params + self.embedding_params + final + self.lm_head_params

    @property
    def kv_cache_elements_per_token(self) -> int:
        """K and V cache entries one token adds over all layers (elements)."""
        return 2 * self.num_layers * self.kv_dim

    def describe(self) -> str:
        """One-line summary, e.g. ``llama-2-70b: llama, 80 layers, hidden 8192, ...``."""
        ffn = f"{'gated ' if self.gated_ffn else ''}{self.activation.value}"
        window = f", window {self.sliding_window}" if self.sliding_window else ""
        return (f"{self.name}: {self.family.value}, {self.num_layers} layers, hidden {self.hidden_size}, "
                f"FFN {self.intermediate_size} ({ffn}), {self.num_heads} heads / {self.num_kv_heads} KV heads "
                f"x {self.head_dim}, vocab {self.vocab_size}, context {self.max_position_embeddings}"
                f"{window}, {self.total_params / 1e9:.2f} B params")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
