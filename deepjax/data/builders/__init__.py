"""deepjax.data.builders."""
