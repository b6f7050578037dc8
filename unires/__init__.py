"""UniRes: universal image restoration for complex degradations (arXiv 2506.05599)."""

__version__ = "0.1.0"
