"""`python -m deepjax.animate`: see deepjax/apps/animate.py."""
from deepjax.apps import animate

if __name__ == "__main__":
  animate.run()
