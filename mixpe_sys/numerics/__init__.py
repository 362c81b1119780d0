"""Bit-exact NumPy model of MixPE's arithmetic.

- :mod:`.quantize`: group-wise asymmetric weight quantization, symmetric
  integer activation quantization.
- :mod:`.shift_add`: the W4A8 shift-and-add product and GEMM (exact integers).
- :mod:`.fp16_exp`: the W4A16 product by FP16 exponent addition.
- :mod:`.dequant`: dequantize-first GEMM versus MixPE's post-GEMM per-group dequant.
- :mod:`.minifloat`: rounding to small float formats (FP8).
- :mod:`.snr`: quantization SNR, the numerical-fidelity axis of the DSE.
"""

from .dequant import activation_group_sums, gemm_dequant_first, gemm_post_dequant, group_dot_products
from .fp16_exp import fp16_mul_pow2, fp16_shift_add_gemm, fp16_shift_add_multiply
from .minifloat import E4M3_MAX, max_finite, round_to_minifloat
from .quantize import QuantizedActivations, QuantizedWeights, quantize_activations, quantize_weights
from .shift_add import shift_add_gemm, shift_add_multiply
from .snr import (SnrTarget, fake_quantize_activations, fake_quantize_weights, quantization_snr_db,
                  snr_db)

__all__ = [
    "E4M3_MAX",
    "QuantizedActivations",
    "QuantizedWeights",
    "SnrTarget",
    "activation_group_sums",
    "fake_quantize_activations",
    "fake_quantize_weights",
    "fp16_mul_pow2",
    "fp16_shift_add_gemm",
    "fp16_shift_add_multiply",
    "gemm_dequant_first",
    "gemm_post_dequant",
    "group_dot_products",
    "max_finite",
    "quantization_snr_db",
    "quantize_activations",
    "quantize_weights",
    "round_to_minifloat",
    "shift_add_gemm",
    "shift_add_multiply",
    "snr_db",
]
