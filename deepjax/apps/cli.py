"""Shared entry-point wrapper: one-line errors, non-zero exit, no tracebacks.

Every program's `__main__` calls `cli.run(main)`. A `UserError` (bad input)
prints `error: <message>` and exits with status 2; any other exception prints a
one-line internal error and exits with status 1 (set DEEPJAX_DEBUG=1 to see the
traceback). absl's flag errors (unknown flags, bad values) keep their own
one-line message and exit status.
"""
import os
import sys

from absl import app

from deepjax.errors import UserError


def _guard(main):
  def wrapped(argv):
    try:
      return main(argv)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    except KeyboardInterrupt:
      print("interrupted", file=sys.stderr)
      sys.exit(130)
    except SystemExit:
      raise
    except Exception as e:  # pylint: disable=broad-except
      if os.environ.get("DEEPJAX_DEBUG"):
        raise
      msg = str(e).strip().splitlines()
      msg = msg[0] if msg else ""
      print(f"internal error: {type(e).__name__}: {msg} (set DEEPJAX_DEBUG=1 for the traceback)",
            file=sys.stderr)
      sys.exit(1)
  return wrapped


def run(main):
  """Runs an absl `main(argv)` with deepjax's error handling."""
  app.run(_guard(main))
