"""`python -m deepjax.demo`: see deepjax/apps/demo.py."""
from deepjax.apps import demo

if __name__ == "__main__":
  demo.run()
