"""`python -m deepspeech_trainer.prepare ...`: the same as `deepspeech-trainer prepare ...`."""

import sys

from .cli import main

sys.exit(main())
