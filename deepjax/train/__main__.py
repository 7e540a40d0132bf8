"""`python -m deepjax.train`: see deepjax/apps/train.py."""
from deepjax.apps import train

if __name__ == "__main__":
  train.run()
