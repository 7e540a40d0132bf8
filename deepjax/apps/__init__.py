"""Thin absl programs over the library: train, swap, demo, bench, extract, ..."""
