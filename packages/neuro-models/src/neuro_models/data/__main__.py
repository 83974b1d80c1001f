"""``python -m neuro_models.data download NAME DIR``: fetch and verify a corpus (needs network)."""

from __future__ import annotations

import argparse
import logging

from neuro_models.data.fetch import SOURCES, download


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m neuro_models.data")
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="fetch a corpus into a data directory, verifying sha256")
    dl.add_argument("name", choices=sorted(SOURCES))
    dl.add_argument("data_dir")
    dl.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    for path in download(args.name, args.data_dir, overwrite=args.overwrite):
        logging.info("ok %s", path)


if __name__ == "__main__":
    main()
