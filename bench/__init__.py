"""Benchmarks (`make bench`): measured against a reference in the same run, never timed tests."""
