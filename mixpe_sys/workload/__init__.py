"""Workloads: model specs, quantization schemes, operators, traces, requests."""
