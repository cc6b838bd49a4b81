"""The hocker-fetch benchmark: `bash bench/run [--quick]` (see run.py). A package so its modules import each
other the same way wherever it is started from: run.py (the command), harness.py (timing and the result
record), seed.py (registry and content), workspace.py (scratch dir and command lines), nix.py (throw-away
Nix stores), report.py (table and machine info), cases/ (one module per case)."""
