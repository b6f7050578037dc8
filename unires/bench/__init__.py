"""Benchmarks: speed, degradation throughput, quality tables."""
