"""TRUSTED: the Jupyter kernel process. It holds the connection's secrets and never
runs or imports user code: protocol handlers, the executor's lifecycle, the trusted
side of the relay, the workspace checks. Never imports ``child/`` or ``launcher/``
(an import-linter contract in pyproject.toml)."""
