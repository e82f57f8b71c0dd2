"""`python -m tests.engines build|list` (behind `make engines`)."""

from __future__ import annotations

import argparse
import sys

from tests import engines


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.engines", description=engines.__doc__)
    parser.add_argument("command", choices=["build", "list"])
    command = parser.parse_args().command
    if command == "list":
        for name in engines.requested():
            found = engines.find(name)
            print(f"{name}: {found.python if found else engines.skip_reason(name)}")
        return 0
    python = engines.find_python37()
    if python is None:
        print(f"engines: {engines.PYTHON_HINT}", file=sys.stderr)
        return 1
    for name in engines.requested():
        engines.build(name, python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
