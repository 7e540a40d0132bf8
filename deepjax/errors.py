"""User-facing errors.

A `UserError` is raised for bad input (missing folders, unreadable files, wrong
config keys, mismatched checkpoints). Programs catch it at the top level and
print its message on one line with a non-zero exit status; nothing else in the
library prints or exits.
"""


class UserError(Exception):
  """Bad input from the user: printed as one line, exit status 2."""
