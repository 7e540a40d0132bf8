"""Benchmarks: one registry of rows (`deepjax.bench.registry`), one timing helper and one
result schema (`deepjax.bench.timing`). `deepjax bench` runs them."""
