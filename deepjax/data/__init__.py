"""deepjax.data."""
