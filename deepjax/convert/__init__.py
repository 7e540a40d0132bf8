"""deepjax.convert: import published checkpoints of other frameworks (first-order motion).

`deepjax convert --from=fomm ...` (deepjax/cli/convert.py); library:
`deepjax.convert.fomm` (mapping, run folder) and `deepjax.convert.checkpoint_io` (reading).
"""
