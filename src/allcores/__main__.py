"""``python -m allcores``: the ``allcores`` command (see ``allcores.cli``)."""

import sys

from allcores.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m allcores"))
