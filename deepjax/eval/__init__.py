"""Evaluation helpers: a landmark regressor for pose/expression error, swap evaluation."""
