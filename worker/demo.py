"""`python -m worker.demo FOLDER`: the tiny demo model, built with no download. `smiley demo`
runs this in a child process so that the CLI itself never imports torch."""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    from worker.training.tiny import build_tiny_model

    build_tiny_model(args.folder, hidden=args.hidden, layers=args.layers)
    print(args.folder)


if __name__ == "__main__":
    main()
