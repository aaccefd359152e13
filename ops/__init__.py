"""The operator side: CLI, embedded stack, certificates, benchmarks."""
