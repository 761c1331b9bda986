"""BESIDE USER CODE, in the sandbox: the executor's IPython shell, output capture,
the frame channel, audit hooks and snapshots. Everything here shares the interpreter
with the cells, so nothing here is trusted; it never imports ``kernel/`` or the
relay (an import-linter contract in pyproject.toml); it writes
frames with ``sandbox_kernel.framing``."""
