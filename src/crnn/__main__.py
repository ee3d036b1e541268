"""``python -m crnn ...`` runs the ``crnn`` command (see `crnn.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
