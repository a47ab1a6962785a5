"""`python -m corral.tune APP ...`: the same as `corral tune APP ...`."""

import sys

from corral.tune.main import main

if __name__ == "__main__":
    sys.exit(main())
