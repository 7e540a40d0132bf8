"""Atomic file output: write to a temporary name in the same folder, then rename.

A program that fails half-way never leaves a partial output file behind.
"""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path: str):
  """Yields a temporary path next to `path`; renames it to `path` on success.

  The temporary name keeps the extension of `path` (writers such as ffmpeg pick
  the container from it). On any exception the temporary file is removed.
  """
  path = os.path.abspath(path)
  folder = os.path.dirname(path)
  os.makedirs(folder, exist_ok=True)
  base, ext = os.path.splitext(os.path.basename(path))
  fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".partial{ext}", dir=folder)
  os.close(fd)
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_bytes_atomic(path: str, data: bytes) -> None:
  """Writes `data` to `path` atomically."""
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)


def write_text_atomic(path: str, text: str) -> None:
  """Writes `text` (UTF-8) to `path` atomically."""
  write_bytes_atomic(path, text.encode("utf-8"))
