"""Quantization schemes: weight, activation and KV-cache precision, group size."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..config_base import ConfigBase, param
from ..errors import ConfigError


class NumberFormat(str, enum.Enum):
    """Encoding of an operand: two's-complement/unsigned integer or IEEE float."""

    INT = "int"
    FP = "fp"


@dataclass(frozen=True)
class QuantScheme(ConfigBase):
    """Precision of a model's operands (``W4A8`` = 4-bit weights, 8-bit activations).

    Weights are quantized group-wise along the reduction (K) dimension with one
    scale and one zero point per group of ``group_size`` weights.
    """

    weight_bits: int = param(4, help="bits per weight element", unit="bits", ge=1, le=32)
    activation_bits: int = param(8, help="bits per activation element", unit="bits", ge=1, le=32)
    activation_format: NumberFormat = param(NumberFormat.INT, help="activation encoding: int or fp")
    group_size: int = param(128, help="weights per quantization group along K (0 = per output channel; the last "
                            "group of a column is partial when it does not divide K)", unit="elements", ge=0,
                            le=2**31 - 1)
    kv_bits: int = param(8, help="bits per KV-cache element", unit="bits", ge=1, le=32)
    scale_bits: int = param(16, help="bits per group scale (FP16)", unit="bits", ge=0, le=32)
    zero_bits: int = param(4, help="bits per group zero point (0 = symmetric)", unit="bits", ge=0, le=32)

    def validate(self) -> None:
        if self.activation_format is NumberFormat.FP and self.activation_bits not in (8, 16, 32):
            raise ConfigError(f"field 'activation_bits': FP activations must be 8, 16 or 32 bits, "
                              f"got {self.activation_bits}")

    @property
    def name(self) -> str:
        """Short label such as ``W4A8`` or ``W4A16``."""
        return f"W{self.weight_bits}A{self.activation_bits}"

    @property
    def quantized_weights(self) -> bool:
        """True when weights carry per-group scales (weight bits below 8 with groups)."""
        return self.weight_bits < 8 and self.scale_bits > 0

    @classmethod
    def parse(cls, text: str, **overrides) -> "QuantScheme":
        """Parse ``W4A8``, ``W4A16``, ``W8A8`` or ``W16A16`` (16-bit activations are FP)."""
        t = text.strip().upper()
        try:
            w, a = t[1:].split("A")
            wb, ab = int(w), int(a)
        except ValueError:
            raise ConfigError(f"field 'quant': cannot parse {text!r}; expected e.g. W4A8 or W4A16") from None
        fmt = NumberFormat.FP if ab >= 16 else NumberFormat.INT
        quantized = wb < 8
        kw = dict(weight_bits=wb, activation_bits=ab, activation_format=fmt,
                  kv_bits=8 if ab <= 8 or quantized else 16,
                  scale_bits=16 if quantized else 0, zero_bits=4 if quantized else 0,
                  group_size=128 if quantized else 0)
        kw.update(overrides)
        return cls(**kw)
