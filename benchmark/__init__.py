"""qmap-bench runner: CLI, metrics, the Evaluator, result rows and suites.

Importing this package is cheap on purpose (no torch): `qmap report` and `qmap preference`
must start fast, so heavy modules are imported where they are used.
"""

__version__ = "0.1.0"
