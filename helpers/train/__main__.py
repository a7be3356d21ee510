"""`python -m helpers.train --domains bad_medical_advice --epochs 5` (options = TrainConfig's fields)."""

import sys

from helpers.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
