"""Per-image search of the task weights (paper Sec. 3.3, Eq. 3-4), the reduced search over
the most frequent optima (Sec. 4.2 "Search Complexity"), a fast search (shared first step +
successive halving), a learned predictor, and ``auto_weights``: the one entry point."""

from .auto import AUTO_METHODS, AutoResult, auto_weights, search_candidates
from .batched import restore_candidates
from .fast import fast_search
from .frequent import mine_frequent_sets, select_among
from .grid import ScoredCandidate, SearchResult, grid_search, read_score_table
from .log import check_search_folder, read_search_log, search_record, write_search_record

__all__ = [
    "AUTO_METHODS",
    "AutoResult",
    "ScoredCandidate",
    "SearchResult",
    "auto_weights",
    "check_search_folder",
    "fast_search",
    "grid_search",
    "mine_frequent_sets",
    "read_score_table",
    "read_search_log",
    "restore_candidates",
    "search_candidates",
    "search_record",
    "select_among",
    "write_search_record",
]
