"""Per-image search of the task weights (paper Sec. 3.3, Eq. 3-4) and the reduced search over
the most frequent optima (Sec. 4.2 "Search Complexity")."""

from .frequent import mine_frequent_sets, read_search_log, select_among
from .grid import ScoredCandidate, SearchResult, grid_search, read_score_table

__all__ = [
    "ScoredCandidate",
    "SearchResult",
    "grid_search",
    "mine_frequent_sets",
    "read_score_table",
    "read_search_log",
    "select_among",
]
