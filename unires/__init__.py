"""UniRes: universal image restoration for complex degradations (arXiv 2506.05599)."""

__version__ = "0.1.0"

__all__ = ["UniResPipeline", "__version__"]


def __getattr__(name: str):
    # Lazy: `import unires` stays cheap for the CLI and for tools that only need the version.
    if name == "UniResPipeline":
        from .pipeline import UniResPipeline

        return UniResPipeline
    raise AttributeError(f"module 'unires' has no attribute {name!r}")
