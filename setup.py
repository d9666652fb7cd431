"""The Extension list and compiler flags only; metadata lives in pyproject.toml.

Environment variables (for local builds, never for wheels):
    ALLCORES_MARCH_NATIVE=1   also compile with -march=native (the binary then only
                              runs on CPUs like the build machine's).
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# -ffp-contract=off: fused multiply-add would round differently from the pure-Python
# twins, which must agree with the native kernels bit for bit.
GCC_LIKE_FLAGS = ["-O3", "-ffp-contract=off", "-g0"]
# MSVC does not contract floating point under /fp:precise (its default since VS 2022).
MSVC_FLAGS = ["/O2", "/fp:precise"]


class BuildExtWithFlags(build_ext):
    """Pick flags by compiler family: the Extension list cannot know it in advance."""

    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            flags = MSVC_FLAGS
        else:
            flags = list(GCC_LIKE_FLAGS)
            if os.environ.get("ALLCORES_MARCH_NATIVE") == "1":
                flags.append("-march=native")
        for ext in self.extensions:
            ext.extra_compile_args = flags + ext.extra_compile_args
        super().build_extensions()


extensions = [
    Extension("allcores.native", sources=["ext/native.pyx"], include_dirs=["ext"]),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    ),
    cmdclass={"build_ext": BuildExtWithFlags},
)
