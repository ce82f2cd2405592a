"""`dlmia analyze OUT_DIR [--roc CELL_ID ...]`; dlmia/cli.py declares the options."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Print the per-cell table; write comparison, heatmaps and ROC curves to OUT_DIR/analysis."""
    from analysis.report import summarize

    summarize(args.out_dir, roc=args.roc or ())
    return 0
