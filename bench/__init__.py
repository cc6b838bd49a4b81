"""The hocker-fetch benchmark: `bash bench/run [--quick]` (see run.py). A package so that its modules import
each other the same way wherever it is started from: run.py (the command), harness.py (timing and the result
record), seed.py (the registry and its content)."""
