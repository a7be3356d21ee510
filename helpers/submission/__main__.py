"""`python -m helpers.submission ...`"""

import sys

from helpers.submission.cli import main

sys.exit(main())
