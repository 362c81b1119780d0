"""Simulate a model's inference (prefill + decode, or the MixPE authors' workload) on a design."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable

import pandas as pd

from ..hw.config import AcceleratorConfig, DequantPlacement
from ..hw.launch import LaunchMode, launch_mode
from ..workload.models import ModelSpec
from ..workload.ops import Op, OpBlock, blocks_of
from ..workload.quant import QuantScheme
from ..workload.paper import DequantGemmPlacement, PaperProfile
from ..workload.attention import AttentionMode, attention_mode
from ..workload.transformer import HEAD_OPS, full_workload, full_workload_blocks, ops_per_layer, paper_workload
from .engine import CostCache, run_blocks
from .op_table import OpTable


class WorkloadKind(str, enum.Enum):
    """Which ops to run: the whole decoder, or the MixPE authors' linear-layer workload."""

    FULL = "full"
    PAPER = "paper"


@dataclass(frozen=True)
class ModelResult:
    """DataFrames ``ops``, ``layers``, ``phases`` and the headline figures of a run.

    The op records are held compactly (``table``, an :class:`~.op_table.OpTable`); each frame is built
    the first time it is asked for.
    """

    model: str
    design: str
    workload: str
    batch: int
    prompt_tokens: int
    generate_tokens: int
    table: OpTable = field(repr=False)
    simulated_ops: int = 0
    distinct_ops: int = 0
    config: AcceleratorConfig | None = field(default=None, repr=False)
    utilization: pd.DataFrame | None = field(default=None, repr=False)  # per unit class over the run
    launch: str = LaunchMode.GRAPH.value
    quant: str = ""
    attention: str = AttentionMode.FUSED.value

    @cached_property
    def ops(self) -> pd.DataFrame:
        """One row per op in program order (see :data:`~.op_table.OP_COLUMNS`)."""
        return self.table.ops_frame()

    @cached_property
    def layers(self) -> pd.DataFrame:
        """One row per (phase, step, layer) (see :func:`~mixpe_sys.report.layers_report`)."""
        return self.table.layers_frame()

    @cached_property
    def phases(self) -> pd.DataFrame:
        """One row per phase (see :func:`~mixpe_sys.report.phases_report`)."""
        return self.table.phases_frame()

    def phase_time_s(self, phase: str) -> float:
        """Total time of a phase (s); 0 when absent."""
        row = self.phases[self.phases["phase"] == phase]
        return float(row["time_s"].iloc[0]) if len(row) else 0.0

    def memory_bound_share(self, phase: str) -> float | None:
        """Share of a phase's time spent in memory-bound ops (None when absent)."""
        row = self.phases[self.phases["phase"] == phase]
        return float(row["memory_bound_share"].iloc[0]) if len(row) else None

    @property
    def total_time_s(self) -> float:
        return float(self.table.total("time_s"))

    @property
    def energy_j(self) -> float:
        """Total energy of the run (J)."""
        return float(self.table.total("energy_j"))

    @property
    def energy_breakdown_j(self) -> dict[str, float]:
        """``{static, dram, buffer, core}`` energy of the run (J)."""
        return {part: float(self.table.total(f"{part}_energy_j")) for part in ("static", "dram", "buffer", "core")}

    def to_dict(self) -> dict[str, Any]:
        """Headline figures (JSON-ready; computed from the op table, without building the per-op frame)."""
        prefill, decode = self.phase_time_s("prefill"), self.phase_time_s("decode")
        total = self.total_time_s
        # tokens come from what ran: one per sequence per decode step, plus the first from prefill
        decode_steps = self.table.steps("decode")
        has_prefill = self.table.steps("prefill") > 0
        tokens = self.batch * (decode_steps + (1 if has_prefill else 0))
        return {
            "model": self.model, "design": self.design, "workload": self.workload, "quant": self.quant,
            "launch": self.launch, "attention": self.attention, "batch": self.batch,
            "prompt_tokens": self.prompt_tokens, "generate_tokens": self.generate_tokens,
            "prefill_time_s": prefill, "decode_time_s": decode, "total_time_s": total,
            "time_per_output_token_s": decode / decode_steps if decode_steps else None,
            "tokens_per_s": tokens / total if total else None,
            "dram_read_bytes": int(self.table.total("dram_read_bytes")),
            "dram_write_bytes": int(self.table.total("dram_write_bytes")),
            "macs": int(self.table.total("macs")),
            "memory_bound_share_prefill": self.memory_bound_share("prefill"),
            "memory_bound_share_decode": self.memory_bound_share("decode"),
            "ops": len(self.table), "simulated_ops": self.simulated_ops, "distinct_ops": self.distinct_ops,
            "output_tokens": tokens, "energy_j": self.energy_j,
            "energy_per_output_token_j": self.energy_j / tokens if tokens else None,
            "energy_breakdown_j": self.energy_breakdown_j,
        }


def paper_profile(design: AcceleratorConfig, quant: QuantScheme) -> PaperProfile:
    """The design's paper profile, or one derived from the run's quantization and the dequant placement."""
    if design.paper_profile is not None:
        return design.paper_profile
    after = design.tile.dequant.placement is DequantPlacement.POST_GEMM
    return PaperProfile(weight_bits=quant.weight_bits, activation_bits=quant.activation_bits,
                        dequant_gemm=DequantGemmPlacement.AFTER if after else DequantGemmPlacement.BEFORE,
                        dequant_bits=max(quant.activation_bits, 8))


def paper_ops(model: ModelSpec, design: AcceleratorConfig, quant: QuantScheme, *, batch: int = 64) -> Iterable[Op]:
    """The MixPE authors' workload as ``design`` runs it: its paper profile and ``quant``'s group size."""
    group = quant.group_size if quant.quantized_weights and quant.group_size else 0
    return paper_workload(model, paper_profile(design, quant), batch=batch, group_size=group)


def model_ops(model: ModelSpec, design: AcceleratorConfig, *, batch: int, prompt: int, generate: int,
              workload: WorkloadKind = WorkloadKind.FULL, quant: QuantScheme,
              attention: AttentionMode | str = AttentionMode.FUSED) -> Iterable[Op]:
    """The op stream of a run with quantization ``quant`` (a generator)."""
    if workload is WorkloadKind.PAPER:
        return paper_ops(model, design, quant, batch=batch)
    return full_workload(model, quant, batch=batch, prompt=prompt, generate=generate, attention=attention)


def model_blocks(model: ModelSpec, design: AcceleratorConfig, *, batch: int, prompt: int, generate: int,
                 workload: WorkloadKind = WorkloadKind.FULL, quant: QuantScheme,
                 attention: AttentionMode | str = AttentionMode.FUSED) -> Iterable[OpBlock]:
    """:func:`model_ops` as blocks (identical layers of a step in one block), the same ops once expanded."""
    if workload is WorkloadKind.PAPER:
        return blocks_of(paper_ops(model, design, quant, batch=batch))
    return full_workload_blocks(model, quant, batch=batch, prompt=prompt, generate=generate, attention=attention)


def op_count(model: ModelSpec, *, prompt: int, generate: int, workload: WorkloadKind,
             attention: AttentionMode | str = AttentionMode.FUSED) -> int:
    """Number of ops the run has (for progress bars)."""
    if workload is WorkloadKind.PAPER:
        return model.num_layers * 8
    per_phase = model.num_layers * ops_per_layer(attention) + HEAD_OPS
    return per_phase * max(1, generate)


def simulate_ops_result(ops: Iterable[Op], design: AcceleratorConfig, *, model_name: str, workload: str,
                        batch: int, prompt: int, generate: int, reuse: bool = True, progress: bool | None = None,
                        total: int | None = None, cache: CostCache | None = None, workers: int = 1,
                        launch: LaunchMode | str | None = None, quant: str = "", cache_dir=None,
                        attention: str = AttentionMode.FUSED.value, fast_forward: bool = True) -> ModelResult:
    """Run an op stream and build the result with its reports.

    With ``reuse`` the stream's distinct ops are first simulated (on ``workers`` processes when more
    than one; same results, a progress bar over them per ``progress``); ``cache``, if given, brings
    its own workers and launch mode. ``launch`` is how kernels are issued (``graph``, the default, or
    ``eager``; see :mod:`mixpe_sys.hw.launch`); ``quant`` and ``attention`` label the result;
    ``cache_dir`` chooses the persistent cost store of a new cache (see :class:`CostCache`: None
    default, a path, False none), ``fast_forward`` its GEMMs' steady-state skip (same results).
    ``total`` is unused (kept for callers).
    """
    return simulate_blocks_result(blocks_of(ops), design, model_name=model_name, workload=workload, batch=batch,
                                  prompt=prompt, generate=generate, reuse=reuse, progress=progress, cache=cache,
                                  workers=workers, launch=launch, quant=quant, cache_dir=cache_dir,
                                  attention=attention, fast_forward=fast_forward)


def simulate_blocks_result(blocks: Iterable[OpBlock], design: AcceleratorConfig, *, model_name: str, workload: str,
                           batch: int, prompt: int, generate: int, reuse: bool = True, progress: bool | None = None,
                           cache: CostCache | None = None, workers: int = 1, launch: LaunchMode | str | None = None,
                           quant: str = "", cache_dir=None, attention: str = AttentionMode.FUSED.value,
                           fast_forward: bool = True) -> ModelResult:
    """:func:`simulate_ops_result` of a run given as :class:`~mixpe_sys.workload.ops.OpBlock` s."""
    own = cache is None
    cache = CostCache(design, workers=workers, launch=launch or LaunchMode.GRAPH, cache_dir=cache_dir,
                      fast_forward=fast_forward) if own else cache
    before = cache.simulated
    try:
        run = run_blocks(blocks, design, reuse=reuse, progress=progress, cache=cache, launch=launch)
    finally:
        if own:
            cache.close()
    return ModelResult(model=model_name, design=design.name, workload=workload, batch=batch, prompt_tokens=prompt,
                       generate_tokens=generate, table=run.table, utilization=run.utilization,
                       simulated_ops=cache.simulated - before, distinct_ops=run.distinct_ops, config=design,
                       launch=cache.launch.value, quant=quant, attention=attention)


def simulate_model(model: ModelSpec, design: AcceleratorConfig, *, batch: int = 1, prompt: int = 512,
                   generate: int = 128, workload: WorkloadKind | str = WorkloadKind.FULL, reuse: bool = True,
                   progress: bool | None = None, quant: QuantScheme, workers: int = 1,
                   launch: LaunchMode | str = LaunchMode.GRAPH, cache_dir=None,
                   attention: AttentionMode | str = AttentionMode.FUSED, fast_forward: bool = True) -> ModelResult:
    """Simulate ``model`` on ``design``.

    Parameters
    ----------
    model, design:
        Model shape and accelerator.
    batch:
        Sequences processed together.
    prompt, generate:
        Prompt tokens and generated tokens per sequence (ignored by the paper workload).
    workload:
        ``full`` (whole decoder, prefill and decode) or ``paper`` (the MixPE authors' linear layers).
    reuse:
        Reuse the exact cost of identical ops (False simulates every op; same results).
    progress:
        Progress bar (None = only on a terminal for runs longer than a second).
    quant:
        The run's quantization scheme (the paper workload takes only its group size, and its widths when the
        design has no paper profile); entry points resolve it with :func:`mixpe_sys.hw.precision.run_quant`.
    workers:
        With reuse, simulate the distinct ops on this many processes first (same results).
    cache_dir:
        Persistent op-cost store: None the default directory, a path, False none (same results).
    fast_forward:
        Skip whole repeated periods of each GEMM's steady state (same results, bit for bit).
    launch:
        ``graph`` (kernels replayed from a CUDA graph, default) or ``eager`` (each kernel dispatched from
        the host and waited for); only designs with a ``launch`` block pay for it.
    attention:
        ``fused`` (one FlashAttention-style kernel per layer, default) or ``unfused`` (QK^T, softmax and PV as
        three kernels, the scores through DRAM); see :mod:`mixpe_sys.workload.attention`.

    Raises
    ------
    ConfigError
        An unknown launch or attention mode, or a quantization scheme the design's PEs cannot run.
    MappingError
        Fused attention on a design whose tile cannot hold one query row and one key.
    """
    from ..hw.precision import check_quant

    wl = WorkloadKind(workload)
    launch = launch_mode(launch)
    attention = attention_mode(attention)
    if wl is WorkloadKind.FULL:
        check_quant(design, quant)
    blocks = model_blocks(model, design, batch=batch, prompt=prompt, generate=generate, workload=wl, quant=quant,
                          attention=attention)
    return simulate_blocks_result(blocks, design, model_name=model.name, workload=wl.value, batch=batch,
                                  prompt=prompt if wl is WorkloadKind.FULL else 0,
                                  generate=generate if wl is WorkloadKind.FULL else 1, reuse=reuse,
                                  progress=progress, workers=workers, launch=launch, quant=quant.name,
                                  cache_dir=cache_dir, attention=attention.value, fast_forward=fast_forward)
