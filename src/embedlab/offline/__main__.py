"""``python -m embedlab.offline {build,status}``: the ``make offline`` step."""

import sys

from embedlab.offline.builder import main

if __name__ == "__main__":
    sys.exit(main())
