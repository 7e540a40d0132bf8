"""deepjax: face swapping and one-shot face animation in JAX/Flax.

Images are float32 in [0, 1], NHWC, RGB. Keypoints and landmarks are (x, y) in
[-1, 1] (-1 is the left/top edge of the image, +1 the right/bottom edge).
"""

__version__ = "0.1.0"


def load(path: str):
  """-> (model, params, config) of a deepjax checkpoint (see deepjax.loading)."""
  from deepjax.loading import load as _load  # pylint: disable=import-outside-toplevel
  return _load(path)
