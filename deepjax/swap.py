"""`python -m deepjax.swap`: see deepjax/apps/swap.py."""
from deepjax.apps import swap

if __name__ == "__main__":
  swap.run()
