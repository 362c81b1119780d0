"""Mapping: pure functions from an operation and a hardware config to tile steps."""
