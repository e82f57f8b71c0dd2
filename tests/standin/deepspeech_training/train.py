"""`python -m deepspeech_training.train` STAND-IN (see ../README.md): imitates DeepSpeech 0.7.4–0.9.3."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import standin_core


def main() -> int:
    version = os.environ.get("STANDIN_VERSION", "0.9.3")
    if version.startswith("0.6."):
        # DeepSpeech 0.6.x has no training package.
        print(f"{sys.executable}: No module named deepspeech_training.train", file=sys.stderr)
        return 1
    return standin_core.main(version, sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
