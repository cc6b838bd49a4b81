"""Run the installed console scripts as real processes, with the flags each test registry needs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}: run scripts/setup-deps"
    return str(path)


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment minus anything that could supply credentials by accident."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DOCKER_USER", "DOCKER_PASS", "DOCKER_TOKEN", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG")}
    env["HOME"] = extra.pop("HOME", "/nonexistent-home")
    env.update(extra)
    return env


def run(name: str, *args: str, env: Optional[dict[str, str]] = None, input: Optional[bytes] = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([tool(name), *args], capture_output=True, env=env or clean_env(), input=input,
                          timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)


def registry_args(reg: Any) -> list[str]:
    """hocker form: --registry URL, plus --ca-file for a TLS registry. Credentials are not arguments: give
    them with cred_env (DOCKER_USER/DOCKER_PASS), so they stay off every command line."""
    args = ["--registry", reg.url]
    if reg.ca_file:
        args += ["--ca-file", reg.ca_file]
    return args


def cred_env(reg: Any, **extra: str) -> dict[str, str]:
    """Credentials through DOCKER_USER/DOCKER_PASS, so they are not on any command line."""
    if reg.username:
        extra.setdefault("DOCKER_USER", reg.username)
        extra.setdefault("DOCKER_PASS", reg.password)
    return clean_env(**extra)
