"""deepjax.ops."""
