"""Small typed records for tests that build sides by hand."""

from __future__ import annotations

from typing import Any

from dlmia.records import ServedInfo, SideInfo


def side_info(n_members: int = 1, n_nonmembers: int = 2, **facts: Any) -> SideInfo:
    """A side's info with `n_members` and `n_nonmembers`, other `facts` over plain defaults."""
    served = ServedInfo(n_members, n_nonmembers, 0.5, 1.0, 0.5, {}, 10, popularity_hr_at_10=0.25)
    defaults: dict[str, Any] = {"n_zero_vectors": 0, "history_coverage": 1.0,
                                "list_coverage": 1.0, "vector_seconds": 0.1}  # fmt: skip
    return SideInfo(served, **(defaults | facts))
