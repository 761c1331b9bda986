"""The isolation mechanisms, one module per mechanism (namespaces, seccomp, Landlock,
rlimits, cgroups, ...). Used from both sides: the trusted kernel probes and reports,
the launcher applies. They know nothing of Jupyter (an import-linter contract in
pyproject.toml)."""
