"""deepjax sample --workdir=DIR [--n=8] [--steps=8] [--seed=0] [--output=DIR]

For a face-swap VAE (task 'vae'), writes into --output (default DIR):
- samples.png: n random latents z ~ N(0, I), decoded as A (top row) and as B
  (bottom row);
- interpolation.png: a real face of A (left) and of B (right, from the data's
  test split) with `steps` decodings of the latent means on the line between
  them, decoded as A (top row) and as B (bottom row).
"""
import os

from absl import flags

from deepjax.cli import program
from deepjax.cli.provenance_flags import provenance_for

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained VAE.")
_OUTPUT = flags.DEFINE_string("output", None, "Output folder (default: the workdir).")
_N = flags.DEFINE_integer("n", 8, "Random samples per identity.")
_STEPS = flags.DEFINE_integer("steps", 8, "Interpolation steps.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed of the latents.")
_SCALE = flags.DEFINE_integer("scale", 2, "Nearest-neighbour upscale of the PNGs.")


def real_faces(config):
  """The first test faces of A and B as float32 (S,S,3) each."""
  from deepjax.data import pipeline  # pylint: disable=import-outside-toplevel
  batch = next(iter(pipeline.eval_batches(config.data, 1, "test")))
  return batch["a"][0].astype("float32") / 255.0, batch["b"][0].astype("float32") / 255.0


def main(argv):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from deepjax import compile_options  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.loading import load_params, read_config  # pylint: disable=import-outside-toplevel
  from deepjax.train.tasks import build_task  # pylint: disable=import-outside-toplevel
  from deepjax.train.tasks.ae import numpy_grid  # pylint: disable=import-outside-toplevel
  program.check_args(argv, (("workdir", _WORKDIR.value, "a folder written by deepjax train"),))
  for name, flag in (("n", _N), ("steps", _STEPS), ("scale", _SCALE)):
    if flag.value <= 0 or (name == "steps" and flag.value < 2):
      raise UserError(f"--{name} must be {'at least 2' if name == 'steps' else 'positive'}, "
                      f"got {flag.value}")
  workdir = os.path.abspath(_WORKDIR.value)
  if not os.path.isdir(workdir):
    raise UserError(f"workdir not found: {workdir}")
  config = read_config(workdir)
  if config.get("task") != "vae":
    raise UserError(f"{workdir} holds a {config.get('task')!r} model; sampling needs a VAE "
                    "(train with configs/faceswap_vae.py)")
  from deepjax.provenance import credentials  # pylint: disable=import-outside-toplevel
  prov = provenance_for(workdir, credentials.GENERATED)
  task = build_task(config)
  params = jax.tree.map(jnp.asarray, load_params(workdir))
  size = int(config.data.size)
  out_dir = os.path.abspath(_OUTPUT.value or workdir)

  samples = compile_options.jit(lambda p, k: task.sample(p, k, _N.value, size))(params,
                                                                    jax.random.key(_SEED.value))
  grid = numpy_grid([np.stack([samples["a"][i], samples["b"][i]]) for i in range(_N.value)])
  paths = [os.path.join(out_dir, "samples.png"), os.path.join(out_dir, "interpolation.png")]
  _write_marked(prov, paths[0], _upscale(grid, _SCALE.value))

  face_a, face_b = real_faces(config)
  line = compile_options.jit(lambda p, x0, x1: task.interpolate(p, x0, x1, _STEPS.value))(
      params, jnp.asarray(face_a), jnp.asarray(face_b))
  ends = np.stack([face_a, face_a]), np.stack([face_b, face_b])
  cols = [ends[0]] + [np.stack([line["a"][i], line["b"][i]]) for i in range(_STEPS.value)]
  _write_marked(prov, paths[1], _upscale(numpy_grid(cols + [ends[1]]), _SCALE.value))
  print(f"wrote {paths[0]} ({_N.value} random faces; top row decoded as A, bottom as B) and "
        f"{paths[1]} (face of A -> face of B in {_STEPS.value} steps; rows A, B)")


def _write_marked(prov, path, image_uint8):
  from deepjax.train import metrics as mlib  # pylint: disable=import-outside-toplevel
  mlib.write_png(path, prov.mark_frames(image_uint8))
  prov.sign(path, size=image_uint8.shape[1::-1])


def _upscale(img, k):
  return img.repeat(k, axis=0).repeat(k, axis=1)


def run(argv=None):
  program.run(main, argv)
