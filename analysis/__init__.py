"""Results folders analysed: the typed DataFrame, the paper comparison, heatmaps, ROC curves.

`analysis` builds on `dlmia` (never on Ray); matplotlib is imported only inside plotting functions.
"""

from analysis.report import summarize
from analysis.results import aggregate, load_results, load_trials

__all__ = ["aggregate", "load_results", "load_trials", "summarize"]
