"""`python -m classifier.engine classify|train-head ...`: the engine without the web app."""

import sys

from classifier.engine.cli import main

sys.exit(main())
