"""allcores: get the most out of every CPU core.

- ``allcores.native``: compiled kernels that release the GIL.
- ``allcores.pure``: their pure-Python twins (same names, signatures and results).
- ``allcores.kernels``: the public kernels, taking ordinary Python values.
"""

from allcores._version import __version__
from allcores import kernels

__all__ = ["__version__", "kernels"]
