"""Shared entry-point wrapper: one-line errors, non-zero exit, no tracebacks.

Every program's `__main__` calls `program.run(main)`. A `UserError` (bad input)
prints `error: <message>` and exits with status 2; any other exception prints a
one-line internal error and exits with status 1 (set DEEPJAX_DEBUG=1 to see the
traceback). absl's flag errors (unknown flags, bad values) keep their own
one-line message and exit status.
"""
import logging as logging_std
import os
import sys

from absl import app, flags, logging

from deepjax.errors import UserError, first_line


class _ConsoleFormat(logging_std.Formatter):
  """deepjax's own log lines as plain text ("warning: ..." from WARNING up); others as absl."""

  def __init__(self, fallback):
    super().__init__()
    self._fallback = fallback

  def format(self, record):
    if not _from_deepjax(record):
      return self._fallback.format(record)
    msg = record.getMessage()
    return msg if record.levelno < logging_std.WARNING else f"{record.levelname.lower()}: {msg}"


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _from_deepjax(record) -> bool:
  return (record.pathname or "").startswith(_PACKAGE_DIR)


def _quiet_others(record) -> bool:
  """Other libraries' records (TFDS, orbax, ...) only from ERROR up."""
  return _from_deepjax(record) or record.levelno >= logging_std.ERROR


def configure_logging() -> None:
  """Console logging of the programs: deepjax's INFO lines as plain text on stderr, other
  libraries' absl chatter hidden below ERROR. An explicit --verbosity shows everything absl
  would show at that level."""
  handler = logging.get_absl_handler()
  if flags.FLAGS["verbosity"].present:
    return
  logging.set_verbosity(logging.INFO)
  python_handler = handler.python_handler
  python_handler.setFormatter(_ConsoleFormat(python_handler.formatter or logging_std.Formatter()))
  python_handler.addFilter(_quiet_others)


def _fail(message: str, code: int) -> None:
  """Prints one line and ends the process now: background threads of the libraries (orbax,
  tensorstore) can print tracebacks while an interpreter that failed shuts down."""
  print(message, file=sys.stderr)
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


def _guard(main):
  def wrapped(argv):
    configure_logging()
    try:
      return main(argv)
    except UserError as e:
      _fail(f"error: {e}", 2)
    except KeyboardInterrupt:
      _fail("interrupted", 130)
    except SystemExit:
      raise
    except Exception as e:  # pylint: disable=broad-except
      if os.environ.get("DEEPJAX_DEBUG"):
        raise
      msg = str(e).strip().splitlines()
      msg = msg[0] if msg else ""
      _fail(f"internal error: {type(e).__name__}: {msg} (set DEEPJAX_DEBUG=1 for the "
            "traceback)", 1)
  return wrapped


def enable_compilation_cache() -> None:
  """XLA's persistent compilation cache: a second start of a config skips compiling.

  Location: $JAX_COMPILATION_CACHE_DIR if set, else ~/.cache/deepjax/jax;
  DEEPJAX_COMPILATION_CACHE=0 turns it off.
  """
  if os.environ.get("DEEPJAX_COMPILATION_CACHE", "1") == "0":
    return
  import jax  # pylint: disable=import-outside-toplevel
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir",
                      os.path.join(os.path.expanduser("~"), ".cache", "deepjax", "jax"))
  # Compiles of 0.1 s and more are kept (the watermark's two jits take 0.2-0.4 s each):
  # loading one is faster than compiling it again at every start.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


def _parse_flags(argv):
  """absl flag parsing with one-line errors (also for config files and overrides)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f"error: {e}", file=sys.stderr)
  except Exception as e:  # pylint: disable=broad-except  (config file / override errors)
    print(f"error: bad flag or config override: {first_line(e)}", file=sys.stderr)
  sys.exit(2)


def check_args(argv, required=()) -> None:
  """UserError for command-line words that are not flags, or a required flag left empty.

  `required`: (flag name, value, what the flag names or None) triples, in the order the
  messages should come: "--NAME is required (WHAT)".
  """
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
  for name, value, what in required:
    if not value:
      raise UserError(f"--{name} is required" + (f" ({what})" if what else ""))


def config_value(config_flag):
  """The parsed config of a `config_flags` holder; UserError if the file failed to load."""
  try:
    value = config_flag.value
    if value is not None:
      value.keys()  # the value is loaded lazily: touch it so load errors surface here
    return value
  except Exception as e:  # pylint: disable=broad-except
    msg = first_line(e)
    path = getattr(flags.FLAGS[config_flag.name], "config_filename", None)
    path = path.split(":")[0] if path else path
    if path and not os.path.exists(path):
      raise UserError(f"config file not found: {path}") from e
    raise UserError(f"could not load the config file {path or ''}: {msg}") from e


def run(main, argv=None):
  """Runs an absl `main(argv)` with deepjax's error handling (argv: sys.argv by default).

  absl-logged library chatter is shown from ERROR up (`--verbosity=0` shows INFO).
  """
  enable_compilation_cache()
  app.run(_guard(main), argv=argv, flags_parser=_parse_flags)
