"""`python -m deepjax COMMAND ...`: the same as the `deepjax` console script."""
from deepjax.cli import main

if __name__ == "__main__":
  main()
