"""The repository's tools. Only ``tools.benchmarks`` is imported as a package (run its scripts from
the repository root as ``python -m tools.benchmarks.<name>``); the other scripts run by path."""
