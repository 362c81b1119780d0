"""Whether a design can run a quantization scheme, checked before any simulation."""

from __future__ import annotations

from ..errors import ConfigError, MappingError
from ..workload.quant import QuantScheme
from .config import AcceleratorConfig, DequantPlacement
from .pe import pe_model


def check_quant(design: AcceleratorConfig, quant: QuantScheme) -> None:
    """Raise a one-line :class:`ConfigError` unless ``design`` can run ``quant``'s GEMMs.

    Checks the PE type against the linear layers (weights x activations) and
    the attention GEMMs (KV cache x activations), and that group-quantized
    weights have a dequantization unit to apply their scales.

    Raises
    ------
    ConfigError
        Naming the design, the scheme and the reason.
    """
    pe = pe_model(design.tile.pe_array.pe)
    for what, w_bits in (("linear layers", quant.weight_bits), ("attention on the KV cache", quant.kv_bits)):
        try:
            pe.macs_per_cycle(w_bits, quant.activation_bits, quant.activation_format)
        except MappingError as exc:
            raise ConfigError(f"field 'quant': design '{design.name}' cannot run {quant.name} ({what}): {exc}") \
                from None
    if quant.quantized_weights and quant.group_size and design.tile.dequant.placement is DequantPlacement.NONE:
        raise ConfigError(f"field 'quant': design '{design.name}' cannot run {quant.name} with groups of "
                          f"{quant.group_size}: it has no dequantization unit (tile.dequant.placement: none); "
                          "use group size 0 (per-channel scales) or a design with one")
