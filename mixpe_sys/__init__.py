"""mixpe_sys: discrete-event simulator for mixed-precision LLM inference accelerators."""
