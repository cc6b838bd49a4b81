"""One exception tree so every tool fails with one line and an exit code that says what went wrong."""

from __future__ import annotations


class HockerError(Exception):
    """Base of every error the tools report as `<prog>: <message>`."""

    exit_code = 1


class UsageError(HockerError):
    """Bad command line or malformed user input (reference, digest, platform, credentials file)."""

    exit_code = 2


class AuthError(HockerError):
    """The registry refused our credentials (or demanded some we do not have)."""

    exit_code = 3


class NotFoundError(HockerError):
    """The repository, tag, manifest or blob does not exist (or is hidden from us)."""

    exit_code = 4


class VerificationError(HockerError):
    """Bytes did not match their digest or size: nothing is written."""

    exit_code = 5


class RegistryError(HockerError):
    """The server or the network failed, after retries."""

    exit_code = 6


class ManifestError(HockerError):
    """A manifest or index we cannot use: malformed, schema1, no matching platform."""

    exit_code = 7
