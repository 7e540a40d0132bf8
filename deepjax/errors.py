"""User-facing errors.

A `UserError` is raised for bad input (missing folders, unreadable files, wrong
config keys, mismatched checkpoints). Programs catch it at the top level and
print its message on one line with a non-zero exit status; nothing else in the
library prints or exits.
"""


class UserError(Exception):
  """Bad input from the user: printed as one line, exit status 2."""


def first_line(e: BaseException, limit: int = 0) -> str:
  """The first line of an exception's message (its type's name when empty), for a one-line
  error; cut to `limit` characters with "..." when `limit` is set."""
  line = (str(e).strip().splitlines() or [type(e).__name__])[0]
  return line if not limit or len(line) <= limit else line[:limit - 3] + "..."
