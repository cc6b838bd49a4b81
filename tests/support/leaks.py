"""What "no secret in a repr, a str or a message" means, for properties whose secrets are generated.

A generated secret may coincide with public text: a password equal to the user name (shown, rightly), or
``--us`` inside the honest message "--username is set but --password is not". A plain substring check fails
on those although nothing leaked. The promise is that the text depends on no secret's value: computing it again
with every secret replaced by a marker gives the same text, and no marker appears in it. Only whether a secret
is absent (None), empty or set may show, since that decides what the credentials are.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

#: The Credentials fields that hold secrets (username and source are public).
SECRET_FIELDS = ("password", "token", "identity_token")


def marker(name: str) -> str:
    """A stand-in for the secret called ``name`` that no honest text contains."""
    return f"<<{name}: test marker, never shown>>"


def marked(value: str | None, name: str) -> str | None:
    """``value`` with a set (non-empty) secret replaced by its marker; None and "" stay as they are."""
    return marker(name) if value else value


def mark_secrets(creds: Any) -> Any:
    """A copy of a Credentials whose set secrets are markers."""
    return dataclasses.replace(creds, **{f: marked(getattr(creds, f), f) for f in SECRET_FIELDS})


def outcome(call: Callable[[], Any], errors: type[BaseException] | tuple[type[BaseException], ...]) -> tuple:
    """What a caller (or a log) gets to see of ``call()``: the repr and str of its result, or the type and
    message of the error it raised."""
    try:
        result = call()
    except errors as exc:
        return ("raised", type(exc).__name__, str(exc))
    return ("returned", repr(result), str(result))


def assert_independent_of_secrets(real: tuple, with_markers: tuple, names: tuple[str, ...]) -> None:
    """``real`` and ``with_markers`` are outcomes of one call made with the real secrets and with their markers:
    they must be equal, and no marker may show."""
    assert real == with_markers, "the output depends on a secret's value"
    for name in names:
        assert not any(marker(name) in text for text in with_markers[1:]), f"secret {name} shown"
