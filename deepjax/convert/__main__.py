"""`python -m deepjax.convert`: see deepjax/apps/convert.py."""
from deepjax.apps import convert

convert.run()
