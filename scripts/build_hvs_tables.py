#!/usr/bin/env python
"""Rebuild the committed human-vision tables ``datasets/hvs/<distortion>.csv`` from the raw trials.

Usage::

    python scripts/build_hvs_tables.py [--shared ../shared/data/hvs] [--out datasets/hvs]

Reads ``<shared>/human_trials.csv.gz`` (Geirhos et al. 2018/2021, all trials; no-answer trials
count as incorrect) and ``<shared>/raw/tang2018/occlusion_trials.csv`` (Tang et al. 2018) and
writes one per-condition table per distortion (see ``mappings.hvs`` and ``datasets/hvs/README.md``).
Only these small aggregated tables are written; the raw data stay outside the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import harness  # noqa: F401  (import harness before mappings: the two packages import each other)
from mappings.hvs import build_tables, write_tables

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data" / "hvs",
                        help="folder with human_trials.csv.gz and raw/tang2018/ (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "datasets" / "hvs",
                        help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.shared.is_dir():
        parser.error(f"--shared folder {args.shared} does not exist")
    tables = build_tables(args.shared)
    for path in write_tables(tables, args.out):
        df = tables[path.stem]
        print(f"{path}: {len(df)} rows, {int(df['n_trials'].sum())} trials")
    return 0


if __name__ == "__main__":
    sys.exit(main())
