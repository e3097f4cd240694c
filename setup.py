"""Build the compiled relevance engine (src/somlab/relevance/_kernel.pyx) and the winner search's
row loops (src/somlab/core/_winners.pyx) with Cython.

Everything else about the package lives in pyproject.toml.  -O3 and no -march=native, so that
wheels are portable; -ffp-contract=off keeps float32 rounding identical to the oracles on
machines where the compiler could fuse multiply-adds.
"""

import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "win32":
    compile_args = ["/O2", "/fp:precise"]
else:
    compile_args = ["-O3", "-ffp-contract=off", "-fno-math-errno"]

# OpenMP for the winner search's passes where GCC builds it (Linux); elsewhere they run on one
# thread (the #pragma omp lines are then ignored)
openmp = ["-fopenmp"] if sys.platform.startswith("linux") else []

extensions = [
    Extension(
        "somlab.relevance._kernel",
        ["src/somlab/relevance/_kernel.pyx"],
        depends=["src/somlab/relevance/_simd.h"],
        include_dirs=[np.get_include(), "src/somlab/relevance"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
    ),
    # the row loops of the (sq)euclidean winner search (core.distances.best_matching_units);
    # OpenMP on Linux, where the loaded libgomp.so.1 is torch's own (one thread pool)
    Extension(
        "somlab.core._winners",
        ["src/somlab/core/_winners.pyx"],
        depends=["src/somlab/core/_winners.h"],
        include_dirs=["src/somlab/core"],
        extra_compile_args=compile_args + openmp,
        extra_link_args=openmp,
    ),
]

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}))
