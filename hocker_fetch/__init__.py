"""hocker_fetch: talk to Docker Registry v2 / OCI registries without a daemon, and pin images for Nix."""

__version__ = "0.1.0"
