"""deepjax.convert: import published checkpoints of other frameworks (first-order motion).

`python -m deepjax.convert --from=fomm ...` (deepjax/apps/convert.py); library:
`deepjax.convert.fomm` (mapping, run folder) and `deepjax.convert.checkpoint_io` (reading).
"""
