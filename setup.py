"""The Extension list and compiler flags only; metadata lives in pyproject.toml.

Environment variables (for local builds, never for wheels):
    ALLCORES_MARCH_NATIVE=1   also compile with -march=native (the binary then only
                              runs on CPUs like the build machine's).
    ALLCORES_DEBUG_BUILD=1    keep debug information and symbols (release builds strip
                              them: the wheel is then a fraction of the size).
"""
import sys

import os

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# -ffp-contract=off: fused multiply-add would round differently from the pure-Python
# twins, which must agree with the native kernels bit for bit.
GCC_LIKE_FLAGS = ["-O3", "-ffp-contract=off"]
# MSVC does not contract floating point under /fp:precise (its default since VS 2022).
MSVC_FLAGS = ["/O2", "/fp:precise"]


class BuildExtWithFlags(build_ext):
    """Pick flags by compiler family: the Extension list cannot know it in advance."""

    def build_extensions(self):
        debug = os.environ.get("ALLCORES_DEBUG_BUILD") == "1"
        link_flags = []
        if self.compiler.compiler_type == "msvc":
            flags = list(MSVC_FLAGS)
        else:
            flags = GCC_LIKE_FLAGS + (["-g"] if debug else ["-g0"])
            if os.environ.get("ALLCORES_MARCH_NATIVE") == "1":
                flags.append("-march=native")
            if not debug and sys.platform.startswith("linux"):
                link_flags.append("-s")  # strip the symbol table too
        for ext in self.extensions:
            ext.extra_compile_args = flags + ext.extra_compile_args
            ext.extra_link_args = link_flags + ext.extra_link_args
            # Recorded in the binary for `allcores info` (see ext/build_info.h).
            ext.define_macros.append(("AC_BUILD_FLAGS", '"' + " ".join(flags) + '"'))
        super().build_extensions()


extensions = [
    Extension("allcores.native", sources=["ext/native.pyx"], include_dirs=["ext"]),
    # The engine's per-item call loop (see ext/calls.pyx): no numpy, so that a worker
    # process imports only what its tasks need.
    Extension("allcores._calls", sources=["ext/calls.pyx"]),
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
