"""deepjax.train."""
