"""deepjax: face swapping and one-shot face animation in JAX/Flax."""
import os

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "requirements.txt")) as f:
  install_requires = [l.strip() for l in f if l.strip() and not l.startswith("#")]

setup(
    name="deepjax",
    version="0.1.0",
    description="Face swapping and one-shot face animation (first-order motion) in JAX/Flax.",
    long_description=open(os.path.join(here, "README.md")).read() if os.path.exists(
        os.path.join(here, "README.md")) else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["deepjax", "deepjax.*"]),
    install_requires=install_requires,
    entry_points={"console_scripts": ["deepjax = deepjax.cli:main"]},
    extras_require={
        # PyTorch checkpoint import (deepjax.convert) and the face-alignment backend.
        # Pin torch: an unpinned torch pulls a multi-GB CUDA build.
        "torch": ["torch==2.13.0"],
        "face_alignment": ["torch==2.13.0", "face-alignment>=1.4"],
        "notebooks": ["nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29"],
        "dev": ["pytest>=8", "pytest-xdist>=3.5", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29"],
    },
)
