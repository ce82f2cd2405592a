"""dlmia: membership-inference attacks against recommender systems
(DL-MIA and the Biased baseline).

The library never imports Ray; `tune/` and `analysis/` build on it.
"""

__version__ = "0.2.0"
