"""`python -m deepjax.sample`: see deepjax/apps/sample.py."""
from deepjax.apps import sample

if __name__ == "__main__":
  sample.run()
