"""`dlmia analyze OUT_DIR [--roc CELL_ID ...]`; dlmia/cli.py declares the options."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlmia.errors import OutputError
from dlmia.layout import ANALYSIS_DIR


def run(args: argparse.Namespace) -> int:
    """Print the per-cell table; write comparison, heatmaps and ROC curves to OUT_DIR/analysis
    (and with --html the one-page report, OUT_DIR/analysis/report.html).

    Raises:
        OutputError: OUT_DIR/analysis cannot be written (read-only, full), naming the file; the
            results are only read, so nothing of them is lost.
    """
    from analysis.html import write_html
    from analysis.report import summarize

    try:
        summarize(args.out_dir, roc=args.roc or ())
        if args.html:
            print(f"report: {write_html(args.out_dir)}")
    except OSError as exc:
        where = exc.filename2 or exc.filename or Path(args.out_dir) / ANALYSIS_DIR
        raise OutputError(
            f"cannot write {where} ({exc.strerror or exc}); the results are unchanged: free "
            "space or make the folder writable, then rerun dlmia analyze"
        ) from None
    return 0
