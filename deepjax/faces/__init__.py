"""deepjax.faces."""
