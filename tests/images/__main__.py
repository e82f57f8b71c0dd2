"""`python -m tests.images build|clean|list` (behind `make images`)."""

from __future__ import annotations

import argparse
import sys

from tests import images


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.images", description=images.__doc__)
    parser.add_argument("command", choices=["build", "clean", "list"])
    command = parser.parse_args().command
    if command == "build":
        images.build_all()
    elif command == "clean":
        images.clean()
    else:
        names = [images.OPERATOR_IMAGE, *map(images.trainer_image, images.requested())]
        for name in names:
            print(f"{name}: {images.missing_reason(name) or 'built'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
