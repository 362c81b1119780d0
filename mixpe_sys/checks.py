"""What a design and a workload accept, checked at the entry points before any simulation.

The command line and the public API (:func:`mixpe_sys.simulate_gemm`,
:func:`mixpe_sys.simulate`, :func:`mixpe_sys.serving.replay`) call these, so an
input the simulator cannot mean is a one-line :class:`ConfigError` naming the
field, never a hang or a silently wrong figure. The rules:

- **Precision and groups** (one rule for every command): see
  :mod:`mixpe_sys.hw.precision`.
- **Sizes**: the documented limits of :mod:`mixpe_sys.limits`; a model run's
  sequences must fit the model's context (``prompt + generate - 1 <=
  max_position_embeddings``) and their KV cache the design's DRAM.
"""

from __future__ import annotations

from typing import Iterable

from .errors import ConfigError
from .hw.config import AcceleratorConfig
from .hw.pe import pe_model
from .hw.precision import check_quant, quant_problem
from .limits import MAX_RUN_OPS, MAX_TILE_STEPS, check_at_most, check_gemm_dims
from .mapping.gemm import GemmSpec
from .mapping.tiling import choose_tiling
from .workload.model_spec import ModelSpec
from .workload.ops import Op, OpKind
from .workload.quant import NumberFormat, QuantScheme


def gemm_tile_steps(spec: GemmSpec, design: AcceleratorConfig) -> int:
    """Tile steps the mapper's tiling of ``spec`` has on ``design`` (without building them)."""
    return choose_tiling(spec, design).tile_steps(spec)


def check_gemm_spec(spec: GemmSpec, design: AcceleratorConfig, what: str = "GEMM") -> None:
    """Dimensions and tile steps within :mod:`mixpe_sys.limits` (errors name the dimension)."""
    check_gemm_dims(spec.m, spec.n, spec.k, spec.batch)
    steps = gemm_tile_steps(spec, design)
    if steps > MAX_TILE_STEPS:
        raise ConfigError(f"field 'm/n/k/batch': {what} {spec.batch} x [{spec.m} x {spec.k}] x [{spec.k} x {spec.n}] "
                          f"needs {steps:,} tile steps on design '{design.name}', above the limit of "
                          f"{MAX_TILE_STEPS:,} (mixpe_sys.limits)")


def check_attention(op: Op, design: AcceleratorConfig) -> None:
    """A fused attention op maps onto ``design`` (its tile holds a query row and a key) within the tile-step limit."""
    from .errors import MappingError
    from .mapping.attention import choose_blocks

    spec = op.attention_spec()
    check_gemm_dims(spec.rows, spec.kv_len, spec.head_dim, spec.instances)
    try:
        steps = choose_blocks(spec, design).steps
    except MappingError as exc:
        raise ConfigError(str(exc)) from None
    if steps > MAX_TILE_STEPS:
        raise ConfigError(f"field 'm/n/k/batch': fused attention of {spec.instances} x {spec.rows} rows x "
                          f"{spec.kv_len} keys needs {steps:,} tile steps on design '{design.name}', above the "
                          f"limit of {MAX_TILE_STEPS:,} (mixpe_sys.limits)")


def check_gemm(m: int, n: int, k: int, batch: int, design: AcceleratorConfig, quant: QuantScheme) -> None:
    """Everything :func:`mixpe_sys.simulate_gemm` checks before it maps the GEMM."""
    check_gemm_dims(m, n, k, batch)
    check_quant(design, quant, prefix="")


def check_model_run(model: ModelSpec, design: AcceleratorConfig, *, batch: int, prompt: int, generate: int,
                    workload: str = "full", quant: QuantScheme, attention: str = "fused") -> None:
    """Everything a model run must satisfy (context, KV cache, precision, groups, sizes).

    Raises
    ------
    ConfigError
        Naming the option (``batch``, ``prompt``, ``generate``) or the design or model field at fault.
    """
    from .sim.model import WorkloadKind, op_count
    from .workload.transformer import layer_ops

    wl = WorkloadKind(workload)
    check_at_most("batch", batch, 2**31 - 1, "sequences")
    if wl is WorkloadKind.PAPER:
        # the authors' model gives its GEMMs bit widths only (no number format): sizes are checked, not precision
        from .sim.model import paper_ops

        first = [op for op, _ in zip(paper_ops(model, design, quant, batch=batch), range(8))]
        check_ops(first, design, what=f"{model.name}'s", precision=False)
        return
    context = model.max_position_embeddings
    if prompt + generate - 1 > context:
        raise ConfigError(f"field 'prompt': a sequence of {prompt} prompt + {generate} generated tokens (its last "
                          f"step attends to {prompt + generate - 1}) is beyond the {context}-token context of "
                          f"{model.name} (max_position_embeddings)")
    check_quant(design, quant)
    check_at_most("generate", op_count(model, prompt=prompt, generate=generate, workload=wl, attention=attention),
                  MAX_RUN_OPS, "ops in one run")
    check_kv_fits(model, design, quant, sequences=batch, tokens_per_sequence=prompt + generate - 1)
    # the largest ops are the prefill layer's and the LM head: their tile steps bound every op's
    check_ops(layer_ops(model, quant, batch=batch, q_tokens=prompt, kv_len=prompt, phase=_prefill(),
                        attention=attention), design, what=f"{model.name}'s")


def _prefill():
    from .workload.ops import Phase

    return Phase.PREFILL


def check_kv_fits(model: ModelSpec, design: AcceleratorConfig, quant: QuantScheme, *, sequences: int,
                  tokens_per_sequence: int) -> None:
    """The KV cache of ``sequences`` sequences of ``tokens_per_sequence`` tokens fits the DRAM after the weights."""
    from .serving.kv_cache import kv_budget

    budget = kv_budget(model, design, quant)
    need = sequences * tokens_per_sequence
    if need > budget.capacity_tokens:
        raise ConfigError(f"field 'batch': {sequences} sequences x {tokens_per_sequence} tokens = {need:,} KV-cache "
                          f"tokens, but design '{design.name}' holds {budget.capacity_tokens:,} for {model.name} "
                          f"({budget.kv_capacity_bytes:,} of {budget.dram_capacity_bytes:,} DRAM bytes after the "
                          f"weights, {budget.kv_bytes_per_token:g} bytes per token); use a smaller batch or "
                          f"shorter sequences, or more DRAM (dram.capacity_bytes)")


def check_ops(ops: Iterable[Op], design: AcceleratorConfig, *, what: str = "an", lines: list[int] | None = None,
              source: str | None = None, precision: bool = True) -> None:
    """Precision, groups and tile steps of every distinct array op (errors name the op and its trace line).

    Parameters
    ----------
    ops:
        The ops (an operator trace, or the largest ops of a run).
    design:
        The accelerator.
    what:
        Whose ops they are, for the message.
    lines, source:
        The trace file and each op's line in it, if the ops come from one.
    precision:
        Check the precision rule too (not for the MixPE authors' format-free workload).
    """
    seen: set = set()
    count = 0
    for index, op in enumerate(ops):
        count += 1
        fused = op.kind is OpKind.ATTENTION
        if not (op.kind.on_array or fused):
            continue
        key = op.cost_key()
        if key in seen:
            continue
        seen.add(key)
        where = f"{source}:{lines[index]}: " if source and lines else ""
        label = f"{where}{what} op {index} ({op.name}, {op.kind.value})"
        found = pe_model(design.tile.pe_array.pe).operand_problem(op.weight_bits, op.activation_bits,
                                                                   NumberFormat(op.activation_format))
        if precision and found:
            raise ConfigError(f"{label}: field '{found[0]}': {found[1]} (design '{design.name}')")
        try:
            if fused:
                check_attention(op, design)
            else:
                check_gemm_spec(op.gemm_spec(), design, what="the op's GEMM")
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc.reason}") from None
    check_at_most("ops", count, MAX_RUN_OPS, "ops in one run", source)
