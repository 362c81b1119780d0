"""The shape and operand precisions of one (batched) GEMM: the value type every layer shares."""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from ..errors import MappingError
from .quant import NumberFormat


@dataclass(frozen=True, kw_only=True)
class GemmSpec:
    """One (batched) GEMM: ``batch`` x ``[m, k] x [k, n]``, with operand precisions.

    Attributes
    ----------
    m, n, k:
        Activation rows (tokens), output columns, reduction length.
    batch:
        Independent instances (e.g. batch x KV heads for attention).
    weight_bits, activation_bits, output_bits:
        Bits per element of the weight (or KV) operand, the activations and the output.
    activation_format:
        ``int`` or ``fp`` activations.
    group_size:
        Weights per quantization group along K; 0 = no group scales.
    scale_bits, zero_bits:
        Bits of each group's scale and zero point.
    """

    m: int
    n: int
    k: int
    batch: int = 1
    weight_bits: int = 4
    activation_bits: int = 8
    activation_format: NumberFormat = NumberFormat.INT
    output_bits: int = 8
    group_size: int = 0
    scale_bits: int = 16
    zero_bits: int = 4

    def __post_init__(self) -> None:
        for name in ("m", "n", "k", "batch", "weight_bits", "activation_bits", "output_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise MappingError(f"field '{name}': must be a positive integer, got {value!r}")
        if self.group_size < 0:
            raise MappingError(f"field 'group_size': must be >= 0, got {self.group_size!r}")

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all instances."""
        return self.batch * self.m * self.n * self.k

    def activation_bytes(self, m: int, k: int) -> int:
        """Bytes of an ``[m, k]`` activation tile."""
        return ceil(m * k * self.activation_bits / 8)

    def weight_bytes(self, k: int, n: int) -> int:
        """Bytes of a ``[k, n]`` weight tile including its group scales and zero points."""
        data = k * n * self.weight_bits
        if self.group_size:
            data += ceil(k / self.group_size) * n * (self.scale_bits + self.zero_bits)
        return ceil(data / 8)

    def output_bytes(self, m: int, n: int) -> int:
        """Bytes of an ``[m, n]`` output tile."""
        return ceil(m * n * self.output_bits / 8)

    def compulsory_bytes(self) -> tuple[int, int]:
        """(DRAM read bytes, DRAM write bytes) if each operand is read once and the output written once."""
        reads = self.batch * (self.activation_bytes(self.m, self.k) + self.weight_bytes(self.k, self.n))
        return reads, self.batch * self.output_bytes(self.m, self.n)
