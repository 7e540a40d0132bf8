"""deepjax.models.motion."""
