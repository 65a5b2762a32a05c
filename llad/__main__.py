"""`python -m llad` is the `llad` command."""
import sys

from .cli import main

sys.exit(main())
