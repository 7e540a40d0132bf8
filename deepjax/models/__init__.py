"""deepjax.models."""
