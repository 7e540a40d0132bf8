"""deepjax convert --from=fomm --input=vox-cpk.pth.tar --config=configs/fomm_vox256.py --output=DIR
deepjax convert --from=tpsmm --input=vox.pth.tar --config=configs/tpsmm_vox256.py --output=DIR

Converts a published first-order-motion or thin-plate-spline-motion checkpoint (the
reference PyTorch code's `.pth.tar`, or a flat `.npz` of the same names) into a deepjax
run folder
`DIR/checkpoints/0/{state,data,config}` that `deepjax.load(DIR)` and
`deepjax animate` use. PyTorch files are read with `weights_only=True` (needs
`pip install -e ".[torch]"`); the config must describe the checkpoint's model (every
missing, unexpected or mis-shaped weight is listed in the error).
"""
from absl import flags
from ml_collections import config_flags

from deepjax.cli import program

FORMATS = ("fomm", "tpsmm")
_FROM = flags.DEFINE_enum("from", "fomm", FORMATS, "Source format: fomm = "
                          "github.com/AliaksandrSiarohin/first-order-model checkpoints; "
                          "tpsmm = github.com/yoyo-nb/Thin-Plate-Spline-Motion-Model "
                          "checkpoints (with a config whose model.name is 'tpsmm').")
_INPUT = flags.DEFINE_string("input", None, "Checkpoint file (.pth.tar/.pth/.pt or flat .npz).")
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (.py) of the model, "
                                          "e.g. configs/fomm_vox256.py.", lock_config=False)
_OUTPUT = flags.DEFINE_string("output", None, "Run folder to create (must not hold checkpoints).")


def main(argv):
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  program.check_args(argv, (("input", _INPUT.value, "a .pth.tar checkpoint"),
                            ("output", _OUTPUT.value, "a run folder")))
  config = program.config_value(_CONFIG)
  if config is None:
    raise UserError("--config is required, e.g. --config=configs/fomm_vox256.py")
  if config.get("task") != "motion":
    raise UserError(f"--from={_FROM.value} needs a first-order-motion config (task 'motion'), "
                    f"got task {config.get('task')!r}")
  model_name = config.model.get("name", "fomm")
  if model_name != _FROM.value:
    raise UserError(f"--from={_FROM.value} needs a config of that model; --config's "
                    f"model.name is {model_name!r} (configs/{_FROM.value}_vox256.py is one)")
  import os  # pylint: disable=import-outside-toplevel
  from deepjax.convert import checkpoint_io, fomm  # pylint: disable=import-outside-toplevel
  state = checkpoint_io.read_checkpoint(_INPUT.value)
  what = os.path.basename(_INPUT.value)
  random_parts = []
  if _FROM.value == "tpsmm":
    from deepjax.convert import tpsmm  # pylint: disable=import-outside-toplevel
    from deepjax.models.motion.tpsmm import TPSMM  # pylint: disable=import-outside-toplevel
    model = TPSMM.from_config(config.model)
    variables, random_parts = tpsmm.tpsmm_variables(state, model, int(config.data.size), what,
                                                    int(config.get("seed", 0)))
    parts = model.parts
  else:
    from deepjax.models.motion.fomm import FOMM  # pylint: disable=import-outside-toplevel
    variables = fomm.fomm_variables(state, FOMM.from_config(config.model),
                                    int(config.data.size), what=what)
    parts = fomm.PARTS
  with config.unlocked():
    config.converted_from = dict(format=_FROM.value, input=os.path.abspath(_INPUT.value),
                                 random_parts=list(random_parts))
  step_dir = fomm.write_run(_OUTPUT.value, variables, config)
  ignored = sorted({k.split(".")[0] for k in state} - set(parts))
  note = f" (not converted: {', '.join(ignored)})" if ignored else ""
  if random_parts:
    note += (f" (not in the checkpoint, random weights: {', '.join(random_parts)})")
  print(f"converted {_INPUT.value} -> {step_dir}{note}")


def run(argv=None):
  program.run(main, argv)
