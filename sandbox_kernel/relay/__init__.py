"""The output relay: framing and validation of child bytes, and publishing to Jupyter."""

__all__: list[str] = []
