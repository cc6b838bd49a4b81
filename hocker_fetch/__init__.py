"""hocker_fetch: talk to Docker Registry v2 / OCI registries without a daemon, and pin images for Nix.

Importing the package does no work: `__version__` is looked up on first use (PEP 562), so a fixed-output
builder that fetches one blob does not pay for importlib.metadata (about 0.05 s of start-up).
"""
from __future__ import annotations

import os
from typing import Optional

_PREFIX, _SUFFIX = "hocker_fetch-", ".dist-info"


def _version(package_dir: Optional[str] = None) -> str:
    """setup.cfg is the one place the version is written. Installed (a wheel, the Nix package), it is in the name
    of the `hocker_fetch-VERSION.dist-info` directory next to this package (PEP 427/627), read with one listdir;
    from a checkout (or an editable install), setup.cfg itself; otherwise importlib.metadata's answer."""
    parent = os.path.dirname(package_dir or os.path.dirname(os.path.abspath(__file__)))
    try:
        names = os.listdir(parent)
    except OSError:
        names = []
    found = [n[len(_PREFIX):-len(_SUFFIX)] for n in names if n.startswith(_PREFIX) and n.endswith(_SUFFIX)]
    if len(found) == 1:
        return found[0]
    version = _setup_cfg_version(os.path.join(parent, "setup.cfg"))
    if version:
        return version
    from importlib import metadata

    try:
        return metadata.version("hocker-fetch")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _setup_cfg_version(path: str) -> Optional[str]:
    """`version = X` of setup.cfg's [metadata] section, read line by line (configparser compiles regexes at import,
    a few ms per process for one value)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    section = ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
        elif section == "metadata" and not line[:1].isspace() and "=" in stripped:
            key, value = (part.strip() for part in stripped.split("=", 1))
            if key == "version" and value:
                return value
    return None


def __getattr__(name: str) -> str:
    if name == "__version__":
        version = _version()
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
