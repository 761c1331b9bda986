"""TRUSTED: the output relay, validation of child bytes and publishing to Jupyter (the
frame format both sides write is ``sandbox_kernel.framing``, outside this package)."""

__all__: list[str] = []
