"""How one model replica is split over chips: Megatron-style tensor parallelism and pipeline stages.

Tensor parallelism over ``tp`` chips (Shoeybi et al., *Megatron-LM*,
arXiv 1909.08053, Sec. 3): the QKV and the FFN up (gate+up) projections are
column-parallel (each chip holds ``1/tp`` of the output columns: its share
of the query heads and of the KV heads, and ``1/tp`` of the FFN width), the
attention runs on each chip's own heads, and the output projection and FFN
down projection are row-parallel (each chip holds ``1/tp`` of the input
rows and produces a partial sum of the full hidden width). An all-reduce of
the ``T x hidden`` FP16 activations follows each row-parallel GEMM (two per
layer). Norms and residual adds run replicated on every chip. The embedding
and the LM head are vocabulary-parallel (``ceil(V/tp)`` rows each); the
logits of the sequences producing a token are all-gathered. With fewer KV
heads than chips, each KV head is replicated on ``tp / kv_heads`` chips (as
Megatron-LM does for grouped-query attention).

A chip's share is itself a :class:`~mixpe_sys.workload.models.ModelSpec`
(fewer heads, a narrower FFN, a smaller vocabulary, the stage's layers), so
its ops come from the same op builders as a one-chip run and are costed on
the chip's design through the shared cost cache.

Pipeline parallelism over ``pp`` stages: consecutive layers, as evenly as
possible (the first stages take one more when ``pp`` does not divide the
layers); the embedding lives on the first stage and the final norm and LM
head on the last (a tied LM head is a second copy there). Chips of replica
``r`` are ``r * tp * pp`` onwards, stage by stage, ``tp`` chips per stage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import ceil

from ..errors import ConfigError, FitError
from ..workload.models import ModelSpec
from ..workload.quant import QuantScheme
from .config import SystemConfig


def shard_model(model: ModelSpec, tp: int, num_layers: int | None = None) -> ModelSpec:
    """One chip's share of ``model`` under ``tp``-way tensor parallelism (and ``num_layers`` layers).

    Raises
    ------
    ConfigError
        When ``tp`` does not divide the query heads or the FFN width, or the KV heads
        neither divide nor are divided by ``tp``.
    """
    heads, kv, f = model.num_heads, model.num_kv_heads, model.intermediate_size
    if heads % tp:
        raise ConfigError(f"field 'tp': {tp} does not divide the {heads} attention heads of {model.name}")
    if f % tp:
        raise ConfigError(f"field 'tp': {tp} does not divide the FFN width {f} of {model.name}")
    if kv % tp and tp % kv:
        raise ConfigError(f"field 'tp': {tp} neither divides nor is a multiple of the {kv} KV heads of {model.name}")
    layers = model.num_layers if num_layers is None else num_layers
    if tp == 1 and layers == model.num_layers:
        return model
    return dataclasses.replace(model, name=f"{model.name}[tp{tp}]" if layers == model.num_layers
                               else f"{model.name}[tp{tp},{layers}L]",
                               num_heads=heads // tp, num_kv_heads=max(1, kv // tp), intermediate_size=f // tp,
                               vocab_size=ceil(model.vocab_size / tp), head_dim=model.head_dim, num_layers=layers)


def split_layers(num_layers: int, pp: int) -> list[int]:
    """Layers per stage: as even as possible, the first stages one more."""
    if pp > num_layers:
        raise ConfigError(f"field 'pp': {pp} stages for a model of {num_layers} layers")
    base, extra = divmod(num_layers, pp)
    return [base + (1 if s < extra else 0) for s in range(pp)]


@dataclass(frozen=True)
class Stage:
    """One pipeline stage of a replica: its layers, chips and per-chip model share."""

    index: int
    first_layer: int
    num_layers: int
    chips: tuple[int, ...]
    shard: ModelSpec  # one chip's share: tp-split widths, this stage's layers
    first: bool
    last: bool

    def params_per_chip(self, full: ModelSpec, pp: int) -> int:
        """Weights one chip of this stage holds (elements)."""
        s = self.shard
        n = self.num_layers * s.layer_params
        if self.first:
            n += s.embedding_params
        if self.last:
            n += s.norm_params if s.final_norm else 0
            # a tied head shares the embedding only when both sit on the same chip
            n += s.vocab_size * s.hidden_size if (not s.tie_word_embeddings or pp > 1) else 0
        return n

    def kv_bytes_per_token(self, quant: QuantScheme) -> float:
        """KV-cache bytes one token of one sequence takes on one chip of this stage."""
        return 2 * self.num_layers * self.shard.kv_dim * quant.kv_bits / 8


def weight_bytes_of(params: int, quant: QuantScheme, hidden_size: int) -> int:
    """Bytes of ``params`` weights at the scheme's precision with group scales and zero points
    (the rule of :func:`mixpe_sys.serving.kv_cache.weight_bytes`)."""
    bits = params * quant.weight_bits
    if quant.quantized_weights:
        bits += ceil(params / (quant.group_size or hidden_size)) * (quant.scale_bits + quant.zero_bits)
    return ceil(bits / 8)


@dataclass(frozen=True)
class ReplicaPlan:
    """The stages of one replica of ``model`` on a system."""

    model: ModelSpec
    tp: int
    pp: int
    stages: tuple[Stage, ...]

    @property
    def chips(self) -> tuple[int, ...]:
        """Every chip of the replica, stage by stage."""
        return tuple(c for s in self.stages for c in s.chips)

    def weight_bytes_per_chip(self, stage: Stage, quant: QuantScheme) -> int:
        """Weight bytes on one chip of ``stage``."""
        return weight_bytes_of(stage.params_per_chip(self.model, self.pp), quant, self.model.hidden_size)

    def kv_capacity_tokens(self, quant: QuantScheme, dram_capacity_bytes: int) -> int:
        """Tokens of KV cache the replica holds: the tightest stage's free DRAM over its bytes per token."""
        tokens = None
        for st in self.stages:
            free = dram_capacity_bytes - self.weight_bytes_per_chip(st, quant)
            per = st.kv_bytes_per_token(quant)
            n = int(free // per) if free > 0 else 0
            tokens = n if tokens is None else min(tokens, n)
        return tokens or 0

    def check_fit(self, quant: QuantScheme, dram_capacity_bytes: int, kv_tokens: int, what: str) -> None:
        """Raise :class:`FitError` when the weights plus ``kv_tokens`` of KV cache exceed a chip's DRAM.

        ``what`` says what the KV tokens are for (e.g. ``batch 8 x 640 tokens``).
        """
        for st in self.stages:
            weights = self.weight_bytes_per_chip(st, quant)
            kv = ceil(kv_tokens * st.kv_bytes_per_token(quant))
            if weights + kv > dram_capacity_bytes:
                where = f"stage {st.index} " if self.pp > 1 else ""
                raise FitError(f"{self.model.name} ({quant.name}) does not fit at tp={self.tp}, pp={self.pp}: "
                               f"each {where}chip needs {weights + kv:,} bytes ({weights:,} of weights + {kv:,} of "
                               f"KV cache for {what}) but has {dram_capacity_bytes:,} bytes of DRAM")


def plan_replica(model: ModelSpec, system: SystemConfig, replica: int = 0, *, tp: int | None = None,
                 pp: int | None = None) -> ReplicaPlan:
    """The stages of replica ``replica`` of ``model`` on ``system`` (``tp``/``pp`` override the system's).

    Raises
    ------
    ConfigError
        When the parallelism does not divide the model, or the system has too few chips for the replica.
    """
    tp = tp or system.tp
    pp = pp or system.pp
    per = tp * pp
    first_chip = replica * per
    if first_chip + per > system.num_chips:
        raise ConfigError(f"field 'num_chips': replica {replica} needs chips {first_chip}..{first_chip + per - 1} "
                          f"(tp {tp} x pp {pp}) but the system has {system.num_chips}")
    stages = []
    layer = 0
    counts = split_layers(model.num_layers, pp)
    for s, n in enumerate(counts):
        chips = tuple(range(first_chip + s * tp, first_chip + (s + 1) * tp))
        stages.append(Stage(index=s, first_layer=layer, num_layers=n, chips=chips, shard=shard_model(model, tp, n),
                            first=s == 0, last=s == pp - 1))
        layer += n
    return ReplicaPlan(model=model, tp=tp, pp=pp, stages=tuple(stages))
