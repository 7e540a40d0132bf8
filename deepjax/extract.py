"""`python -m deepjax.extract`: see deepjax/apps/extract.py."""
from deepjax.apps import extract

if __name__ == "__main__":
  extract.run()
