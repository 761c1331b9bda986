"""BEFORE USER CODE: the exec'd launcher (``python -m sandbox_kernel.launcher.launch``)
that applies the isolation ladder and the pid-1 supervisor that holds the sandbox's
process tree. It runs with the sandbox's privileges, so it never imports ``kernel/``
or the relay (an import-linter contract in pyproject.toml)."""
