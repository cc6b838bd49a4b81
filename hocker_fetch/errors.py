"""One exception tree so every tool fails with one line and an exit code that says what went wrong."""

from __future__ import annotations


def one_line(text: str) -> str:
    """Make text safe to print as one line: control characters (newlines, ESC) shown as escapes.

    Error messages quote what servers send; a hostile registry must not be able to forge extra lines.
    """
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


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


def foreign_not_served(exc: NotFoundError) -> NotFoundError:
    """The not-found error of a foreign (non-distributable) layer: its bytes live at its `urls`, not here."""
    return NotFoundError(f"{exc}: it is a foreign (non-distributable) layer the registry does not serve; "
                         "fetch it from its URLs yourself")


class RegistryError(HockerError):
    """The server or the network failed, after retries."""

    exit_code = 6


class RateLimitError(RegistryError):
    """HTTP 429 until the retries ran out; the message carries the registry's own numbers when it sends them."""


class ManifestError(HockerError):
    """A manifest or index we cannot use: malformed, schema1, no matching platform."""

    exit_code = 7


class PolicyRefused(HockerError):
    """The signature policy (policy.json) refuses the image: nothing is written."""

    exit_code = 8
