"""mixpe_sys: discrete-event simulator for mixed-precision LLM inference accelerators.

Main entry points: :func:`simulate` (a model's prefill and decode, on one
chip or on a system of chips), :func:`simulate_gemm` (one GEMM),
:func:`load_design` (a preset or YAML design), :func:`load_system` (a system
preset or file), and the ``mixpe-sim`` command line.
"""

from .designs import design_names, list_designs, load_design
from .errors import ConfigError, MappingError, MixpeError, TraceError
from .workload.gemm_spec import GemmSpec
from .sim.gemm import GemmResult, simulate_gemm as _simulate_gemm_spec
from .workload.quant import QuantScheme

__version__ = "0.1.0"


def simulate_gemm(m: int, n: int, k: int, design="mixpe-w4a8", *, batch: int = 1,
                  quant: str | QuantScheme | None = None, group_size: int | None = None,
                  launch: str = "graph", fast_forward: bool = True) -> GemmResult:
    """Simulate one GEMM ``[m, k] x [k, n]`` on a design.

    Parameters
    ----------
    m, n, k:
        Activation rows (tokens), output columns, reduction length.
    design:
        A preset name, a YAML path, or an :class:`AcceleratorConfig`.
    batch:
        Independent instances.
    quant:
        ``"W4A8"``-style string or a QuantScheme; default the design's.
    group_size:
        Weights per quantization group; default the scheme's. One that does not
        divide ``k`` leaves the last group of each column partial (see
        :mod:`mixpe_sys.hw.precision`).
    launch:
        ``"graph"`` (default) or ``"eager"``: the launch cost of one kernel that ``time_s`` includes
        (designs with a ``launch`` block; ``device_time_s`` is the kernel alone).
    fast_forward:
        Skip whole repeated periods of the steady state (same figures and step rows, bit for bit).

    Returns
    -------
    GemmResult
        ``time_s``, cycles, bytes, roofline figures, and ``steps`` (a DataFrame).

    Raises
    ------
    ConfigError
        A precision the design's PE does not take, or a size beyond :mod:`mixpe_sys.limits`.
    """
    from .checks import check_gemm, check_gemm_spec
    from .hw.config import AcceleratorConfig
    from .hw.precision import run_quant

    cfg = design if isinstance(design, AcceleratorConfig) else load_design(design)
    q = run_quant(cfg, quant, group_size=group_size)
    check_gemm(m, n, k, batch, cfg, q)
    spec = GemmSpec(m=m, n=n, k=k, batch=batch, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                    activation_format=q.activation_format, output_bits=q.activation_bits,
                    group_size=q.group_size if q.quantized_weights else 0, scale_bits=q.scale_bits,
                    zero_bits=q.zero_bits)
    check_gemm_spec(spec, cfg)
    return _simulate_gemm_spec(spec, cfg, launch=launch, fast_forward=fast_forward)


def simulate(model="llama-2-7b", design="mixpe-w4a8", *, batch: int = 1, prompt: int = 512, generate: int = 128,
             workload: str = "full", reuse: bool = True, progress: bool | None = None, workers: int = 1,
             system=None, tp: int | None = None, pp: int | None = None,
             quant: str | QuantScheme | None = None, launch: str = "graph", cache_dir=None,
             attention: str = "fused", fast_forward: bool = True):
    """Simulate a model's inference on a design.

    Parameters
    ----------
    model:
        A shipped model name, a ``config.json`` path, or a ModelSpec.
    design:
        A preset name, a YAML path, or an AcceleratorConfig.
    batch, prompt, generate:
        Sequences, prompt tokens and generated tokens per sequence.
    workload:
        ``"full"`` (whole decoder, prefill + decode) or ``"paper"`` (the MixPE authors' linear layers).
    reuse:
        Reuse exact costs of identical ops (``False`` simulates every op; same results).
    progress:
        Progress bar (None: only on a terminal, for runs over a second).
    workers:
        Processes that simulate the distinct ops in parallel (same results).
    system:
        A system preset name, a system YAML path or a :class:`~mixpe_sys.system.System`: run on one
        replica of it (its chip design replaces ``design``; full workload only).
    tp, pp:
        Tensor- and pipeline-parallel degree: override the system's, or, without ``system``, run on
        ``tp x pp`` chips of ``design`` joined by a switch (PCIe 5.0 x16 links).
    quant:
        ``"W4A16"``-style string or a QuantScheme; default the design's native scheme (the paper
        workload takes none: its precisions are the design's paper profile).
    launch:
        ``"graph"`` (kernels replayed from a CUDA graph, default) or ``"eager"`` (each kernel dispatched
        from the host and waited for, as host-timed measurements see it); see :mod:`mixpe_sys.hw.launch`.
    cache_dir:
        Persistent op-cost store: None the default directory (``MIXPE_SIM_CACHE_DIR`` or the user
        cache directory), a path, or False for none (same results).
    attention:
        ``"fused"`` (one FlashAttention-style kernel per layer, default) or ``"unfused"`` (QK^T, softmax
        and PV as three kernels, the scores through DRAM); systems run fused attention only.
    fast_forward:
        Skip whole repeated periods of each GEMM's steady state (same results, bit for bit).

    Returns
    -------
    ModelResult or SystemResult
        One chip: DataFrames ``ops``, ``layers``, ``phases``; a system: ``chips``, ``collectives``,
        ``passes``, ``ops``; both with ``to_dict()`` headline figures (times in s).

    Raises
    ------
    ConfigError
        A sequence beyond the model's context, a KV cache that does not fit the
        design's DRAM, a precision its PE does not take, or a size beyond
        :mod:`mixpe_sys.limits`.
    """
    from .checks import check_model_run
    from .hw.config import AcceleratorConfig
    from .hw.precision import run_quant
    from .sim.model import simulate_model
    from .workload.attention import AttentionMode, attention_mode
    from .workload.models import ModelSpec, load_model

    spec = model if isinstance(model, ModelSpec) else load_model(model)
    if system is not None or tp or pp:
        from .system import System, load_system, simulate_system, system_of_design

        if workload != "full":
            raise ConfigError("field 'workload': a system runs the full workload (prefill and decode)")
        if attention_mode(attention) is not AttentionMode.FUSED:
            raise ConfigError("field 'attention': a system runs fused attention only")
        if system is None:
            cfg = design if isinstance(design, AcceleratorConfig) else load_design(design)
            sysm = system_of_design(cfg, num_chips=(tp or 1) * (pp or 1), tp=tp or 1, pp=pp or 1)
        else:
            sysm = (system if isinstance(system, System) else load_system(system)).with_parallelism(tp, pp)
        return simulate_system(spec, sysm, batch=batch, prompt=prompt, generate=generate, reuse=reuse,
                               workers=workers, cache_dir=cache_dir, quant=run_quant(sysm.chip, quant),
                               fast_forward=fast_forward)
    cfg = design if isinstance(design, AcceleratorConfig) else load_design(design)
    if workload == "paper" and quant is not None:
        raise ConfigError("field 'quant': the paper workload takes its precisions from the design's paper profile")
    q = run_quant(cfg, quant)
    check_model_run(spec, cfg, batch=batch, prompt=prompt, generate=generate, workload=workload, quant=q,
                    attention=attention_mode(attention).value)
    return simulate_model(spec, cfg, batch=batch, prompt=prompt, generate=generate, workload=workload,
                          reuse=reuse, progress=progress, workers=workers, quant=q, launch=launch,
                          cache_dir=cache_dir, attention=attention, fast_forward=fast_forward)


def load_system(name_or_path):
    """A system of chips: a shipped preset (``dgx-a100``, ``mixpe-board4``) or a system YAML file."""
    from .system import load_system as _load

    return _load(name_or_path)


__all__ = ["simulate", "simulate_gemm", "load_design", "load_system", "list_designs", "design_names", "GemmSpec", "GemmResult",
           "QuantScheme", "MixpeError", "ConfigError", "MappingError", "TraceError"]
