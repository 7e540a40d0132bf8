"""deepjax.convert."""
