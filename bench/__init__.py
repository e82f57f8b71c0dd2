"""Benchmarks of deepspeech-operator: `python -m bench [names...] [--quick]` (see bench/README.md)."""
