"""deepjax.train.tasks."""
