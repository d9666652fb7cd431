"""The Extension list only; metadata lives in pyproject.toml.

The Cython directives (boundscheck=False, wraparound=False, ...) sit at the top of the
.pyx file itself, where whoever edits the kernel sees them.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("own_kernel._native", sources=["src/own_kernel/_native.pyx"])],
    ),
)
