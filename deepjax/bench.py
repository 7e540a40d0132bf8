"""`python -m deepjax.bench`: see deepjax/apps/bench.py."""
from deepjax.apps import bench

if __name__ == "__main__":
  bench.run()
