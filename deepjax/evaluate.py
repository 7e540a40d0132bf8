"""`python -m deepjax.evaluate`: see deepjax/apps/evaluate.py."""
from deepjax.apps import evaluate

if __name__ == "__main__":
  evaluate.run()
