"""conftest.py's Hypothesis profiles: CI runs test the same examples every time, local runs explore."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# A fresh interpreter imports conftest.py the way pytest does first, then reports the active profile.
PROBE = ("import sys; sys.path.insert(0, sys.argv[1]); import conftest; from hypothesis import settings; "
         "s = settings(); print(settings.get_current_profile_name(), s.derandomize, s.database is None, s.deadline)")


@pytest.mark.parametrize("env, profile", [
    ({}, "dev"),
    ({"CI": "true"}, "ci"),  # what .ci/run sets
    ({"CI": "1"}, "ci"),
    ({"CI": "false"}, "dev"),
    ({"CI": ""}, "dev"),
    ({"HYPOTHESIS_PROFILE": "ci"}, "ci"),
    ({"CI": "true", "HYPOTHESIS_PROFILE": "dev"}, "dev"),
])
def test_profile_follows_ci_and_hypothesis_profile(env: dict[str, str], profile: str) -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    out = subprocess.run([sys.executable, "-c", PROBE, str(TESTS)], env={**base, **env}, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    ci = str(profile == "ci")
    # "dev" is a profile of its own, not Hypothesis' built-in "ci" (which it loads by itself when CI is set)
    assert out == [profile, ci, ci, "None"]

