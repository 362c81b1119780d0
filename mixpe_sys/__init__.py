"""mixpe_sys: discrete-event simulator for mixed-precision LLM inference accelerators.

Main entry points: :func:`simulate` (a model's prefill and decode),
:func:`simulate_gemm` (one GEMM), :func:`load_design`
(a preset or YAML design), and the ``mixpe-sim`` command line.
"""

from .designs import design_names, list_designs, load_design
from .errors import ConfigError, MappingError, MixpeError, TraceError
from .mapping.gemm import GemmSpec
from .sim.gemm import GemmResult, simulate_gemm as _simulate_gemm_spec
from .workload.quant import QuantScheme

__version__ = "0.1.0"


def simulate_gemm(m: int, n: int, k: int, design="mixpe-w4a8", *, batch: int = 1,
                  quant: str | QuantScheme | None = None, group_size: int | None = None,
                  launch: str = "graph") -> GemmResult:
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
        Weights per quantization group; default the scheme's.
    launch:
        ``"graph"`` (default) or ``"eager"``: the launch cost of one kernel that ``time_s`` includes
        (designs with a ``launch`` block; ``device_time_s`` is the kernel alone).

    Returns
    -------
    GemmResult
        ``time_s``, cycles, bytes, roofline figures, and ``steps`` (a DataFrame).
    """
    from .hw.config import AcceleratorConfig

    cfg = design if isinstance(design, AcceleratorConfig) else load_design(design)
    q = cfg.quant if quant is None else (QuantScheme.parse(quant) if isinstance(quant, str) else quant)
    group = q.group_size if group_size is None else group_size
    spec = GemmSpec(m=m, n=n, k=k, batch=batch, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                    activation_format=q.activation_format, output_bits=q.activation_bits,
                    group_size=group if q.quantized_weights else 0, scale_bits=q.scale_bits, zero_bits=q.zero_bits)
    return _simulate_gemm_spec(spec, cfg, launch=launch)


def simulate(model="llama-2-7b", design="mixpe-w4a8", *, batch: int = 1, prompt: int = 512, generate: int = 128,
             workload: str = "full", reuse: bool = True, progress: bool | None = None, workers: int = 1,
             quant: str | QuantScheme | None = None, launch: str = "graph"):
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
    quant:
        ``"W4A16"``-style string or a QuantScheme (full workload); default the design's.
    launch:
        ``"graph"`` (kernels replayed from a CUDA graph, default) or ``"eager"`` (each kernel dispatched
        from the host and waited for, as host-timed measurements see it); see :mod:`mixpe_sys.hw.launch`.

    Returns
    -------
    ModelResult
        DataFrames ``ops``, ``layers``, ``phases`` and ``to_dict()`` headline figures (times in s).
    """
    from .hw.config import AcceleratorConfig
    from .sim.model import simulate_model
    from .workload.models import ModelSpec, load_model

    spec = model if isinstance(model, ModelSpec) else load_model(model)
    cfg = design if isinstance(design, AcceleratorConfig) else load_design(design)
    q = QuantScheme.parse(quant) if isinstance(quant, str) else quant
    return simulate_model(spec, cfg, batch=batch, prompt=prompt, generate=generate, workload=workload,
                          reuse=reuse, progress=progress, workers=workers, quant=q, launch=launch)


__all__ = ["simulate", "simulate_gemm", "load_design", "list_designs", "design_names", "GemmSpec", "GemmResult",
           "QuantScheme", "MixpeError", "ConfigError", "MappingError", "TraceError"]
