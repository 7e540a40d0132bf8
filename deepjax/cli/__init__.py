"""The `deepjax` command: one program with subcommands.

    deepjax train --config=configs/faceswap_ae.py:tiny --workdir=runs/ae
    python -m deepjax swap --workdir=runs/ae --video=in.mp4 --output=out.mp4

Each subcommand is a module `deepjax/cli/<name>.py` with absl flags and a `run(argv)`;
only the chosen module is imported, so each command has its own flags. This package is the
only code that parses flags, prints for users and names flags in messages.
"""
import importlib
import sys

# subcommand -> one-line description (shown by `deepjax --help`).
COMMANDS = {
    "demo": "train the tiny face swap on two synthetic people and score its swaps",
    "train": "train or resume any model family from a config",
    "extract": "find, align and crop faces from videos, photos or folders",
    "swap": "swap faces in crops or in every frame of a video (audio kept)",
    "animate": "drive one photo with the motion of a video (first-order motion model)",
    "sample": "random faces and interpolations from a face-swap VAE",
    "evaluate": "quality metrics of a run folder (swap, reconstruction, detection, ...)",
    "detect": "score the faces of images or videos with a trained deepfake detector",
    "detect-data": "prepare a detector's labelled real/fake face crops and list them",
    "convert": "import a published PyTorch checkpoint into a run folder",
    "bench": "speed table of the benchmark rows (JSON too)",
    "verify": "check the C2PA manifest and the watermark of images and videos",
}


def usage() -> str:
  width = max(len(c) for c in COMMANDS)
  lines = ["usage: deepjax COMMAND [--flags]   (deepjax COMMAND --help for its flags)", "",
           "commands:"]
  lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  """Entry point of the `deepjax` console script and `python -m deepjax`."""
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(usage())
    sys.exit(0 if len(argv) >= 2 else 2)
  command = argv[1]
  if command not in COMMANDS:
    print(f"error: unknown command {command!r}\n{usage()}", file=sys.stderr)
    sys.exit(2)
  module = importlib.import_module(f"deepjax.cli.{command.replace('-', '_')}")
  module.run([f"deepjax {command}"] + argv[2:])
