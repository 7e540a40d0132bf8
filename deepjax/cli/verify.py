"""deepjax verify FILE... [--json]

For each image or video: its C2PA manifest (present, valid, signed by, what it asserts, the
run fingerprint) and its pixel watermark (found, payload, confidence and false-positive
rate), one line per file, or a JSON list with --json. Exit status: 0 when every file
carries a valid mark (a valid manifest or a found watermark, and no manifest that fails
validation), 1 when one does not, 2 when a file cannot be read.
"""
import json
import sys

from absl import flags

from deepjax.cli import program

_JSON = flags.DEFINE_boolean("json", False, "Print a JSON list instead of one line per file.")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", 32, "Video frames read per file.")


def line(result: dict) -> str:
  """One line about one file."""
  c, w = result["c2pa"], result["watermark"]
  if not c["present"]:
    c2pa = "c2pa: none"
  elif c["valid"]:
    c2pa = (f"c2pa: valid, signed by {c.get('signed_by')}"
            f"{'' if c.get('trusted') else ' (untrusted certificate)'}, "
            f"{c.get('digital_source_type')}, {c.get('model_family')} run "
            f"{(c.get('run_fingerprint') or '?')[:16]}")
  else:
    c2pa = f"c2pa: INVALID ({', '.join(c.get('failures') or [c.get('state') or '?'])})"
  if w["found"]:
    mark = (f"watermark: {w['payload']} (false-positive rate <= {w['false_positive_rate']:.1e}, "
            f"z {w['z']})")
  elif w.get("too_small"):
    h, wd = w["frame_size"]
    mark = (f"watermark: none ({wd}x{h} px frames are too small to carry a readable pixel "
            "mark; only a manifest can mark them)")
  else:
    mark = f"watermark: none (z {w['z']})"
  return f"{result['path']}: {result['verdict']}; {c2pa}; {mark}"


def main(argv):
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.provenance.verify import verify_file  # pylint: disable=import-outside-toplevel
  paths = argv[1:]
  if not paths:
    raise UserError("give one or more image or video files")
  results, unreadable = [], False
  for path in paths:
    try:
      result = verify_file(path, max_frames=_MAX_FRAMES.value)
    except UserError as e:
      unreadable = True
      result = {"path": path, "verdict": "unreadable", "error": str(e)}
      if not _JSON.value:
        print(f"{path}: unreadable: {e}", file=sys.stderr)
    else:
      if not _JSON.value:
        print(line(result), flush=True)
    results.append(result)
  if _JSON.value:
    print(json.dumps(results, indent=1))
  if unreadable:
    sys.exit(2)
  sys.exit(0 if all(r["verdict"] == "marked" for r in results) else 1)


def run(argv=None):
  program.run(main, argv)
