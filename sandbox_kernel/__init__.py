"""A Jupyter kernel for Python that runs every cell in a sandbox."""

__version__ = "0.1.0"

__all__ = ["__version__"]
