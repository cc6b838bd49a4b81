"""Shim so `pip install .` and legacy tooling work; all metadata lives in setup.cfg."""
from setuptools import setup

setup()
