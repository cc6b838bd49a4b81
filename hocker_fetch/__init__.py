"""hocker_fetch: talk to Docker Registry v2 / OCI registries without a daemon, and pin images for Nix."""
from importlib import metadata as _metadata


def _version() -> str:
    """setup.cfg is the one place the version is written: installed, it is the distribution's metadata; from a
    bare checkout (no metadata), setup.cfg itself."""
    try:
        return _metadata.version("hocker-fetch")
    except _metadata.PackageNotFoundError:
        import configparser
        from pathlib import Path

        cfg = configparser.ConfigParser()
        cfg.read(Path(__file__).resolve().parent.parent / "setup.cfg")
        return cfg.get("metadata", "version", fallback="0+unknown")


__version__ = _version()
