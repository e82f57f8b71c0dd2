#!/usr/bin/env python3
"""DeepSpeech 0.6.x `DeepSpeech.py` STAND-IN (see README.md): imitates the command line, trains nothing."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import standin_core

if __name__ == "__main__":
    version = os.environ.get("STANDIN_VERSION", "0.6.0")
    if not version.startswith("0.6."):
        # 0.7+ ships DeepSpeech.py as a thin shim over the package.
        from deepspeech_training import train

        sys.exit(train.main())
    sys.exit(standin_core.main(version, sys.argv[1:]))
