"""The three run modes every benchmark shares: full (what the README quotes), quick (a few
minutes, indicative) and smoke (seconds, keeps the scripts working in CI)."""

from __future__ import annotations

import argparse
from typing import Literal

Mode = Literal["full", "quick", "smoke"]


def mode_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with ``--quick`` and ``--smoke``, described by the doc's first line."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help="a few minutes: fewer seeds and shorter runs")
    parser.add_argument("--smoke", action="store_true", help="seconds: keeps the script working in CI")
    return parser


def mode_of(args: argparse.Namespace) -> Mode:
    return "smoke" if args.smoke else "quick" if args.quick else "full"
