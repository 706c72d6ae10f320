"""`python -m tinystudent` is the same as the `tinystudent` command."""

import sys

from tinystudent.cli import main

sys.exit(main())
