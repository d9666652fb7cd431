"""``python -m allcores.bench [options]``: the same as ``allcores bench``."""

import sys

from allcores.bench import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m allcores.bench"))
