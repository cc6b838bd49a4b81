"""The `Credentials` type and the sources hocker and nixpkgs define: a credentials file and the environment.

Sources, strongest first (`auth.resolve_credentials` applies this order):

1. `--token` (a ready Bearer token);
2. `--username` + `--password`;
3. `--credentials-file` (hocker's `BEARER_TOKEN=` / `USERNAME=` + `PASSWORD=`, or nixpkgs'
   `DOCKER_TOKEN=` / `DOCKER_USER=` + `DOCKER_PASS=`);
4. the environment (`DOCKER_TOKEN`, or `DOCKER_USER` + `DOCKER_PASS`: the impure variables the Nix
   fetchers pass through; Nix passes an unset impure variable as `""`, so empty means unset);
5. docker / podman configuration (`auth.json` / `config.json`, credential helpers): dockerconfig.py.

Nothing here reads `os.environ` or touches global state: the caller passes the environment in, which keeps
the Nix builder (whose environment is nearly empty) and the tests honest. Secrets never appear in a repr, a
str or an exception message: a traceback in a CI log must not leak a registry password.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from .errors import UsageError, one_line

__all__ = ["Credentials", "from_environment", "parse_credentials_file", "user_password"]

_MASK = "***"
_FILE_KEYS_HELP = (
    "expected BEARER_TOKEN=..., or USERNAME=... and PASSWORD=..."
    " (nixpkgs style: DOCKER_TOKEN=..., or DOCKER_USER=... and DOCKER_PASS=...)"
)


@dataclass(frozen=True, repr=False)
class Credentials:
    """One set of credentials for one registry, plus where it came from (so errors can say which source failed).

    Consumers should prefer, in this order: `token` (send as Bearer), `identity_token` (an OAuth refresh
    token to exchange at the token realm), then `username`/`password` (Basic, or Basic to the token realm).
    """

    username: str | None = None
    password: str | None = None
    #: A ready Bearer token (hocker's --token, BEARER_TOKEN=, DOCKER_TOKEN, a config's "registrytoken").
    token: str | None = None
    #: An OAuth2 refresh token (docker config "identitytoken", or a helper answering Username "<token>").
    identity_token: str | None = None
    #: Human-readable origin, e.g. "--username" or "credentials file /x"; never contains a secret.
    source: str = ""

    @property
    def is_basic(self) -> bool:
        """True when a username and a password are both present (usable for HTTP Basic)."""
        return bool(self.username) and self.password is not None and self.password != ""

    @property
    def is_token(self) -> bool:
        """True when a ready Bearer token is present."""
        return bool(self.token)

    @property
    def is_identity_token(self) -> bool:
        """True when an OAuth refresh token is present (to be exchanged at the token endpoint)."""
        return bool(self.identity_token)

    def __repr__(self) -> str:
        def mask(value: str | None) -> str:
            return "None" if value is None else repr(_MASK)

        return (
            f"Credentials(username={self.username!r}, password={mask(self.password)}, "
            f"token={mask(self.token)}, identity_token={mask(self.identity_token)}, source={self.source!r})"
        )

    def __str__(self) -> str:
        if self.is_token:
            kind = "bearer token"
        elif self.is_identity_token:
            kind = "identity token" + (f" for {self.username!r}" if self.username else "")
        elif self.is_basic:
            kind = f"username {self.username!r} with password"
        else:
            kind = "no usable credentials"
        return f"{kind} (from {self.source})" if self.source else kind


# ---------------------------------------------------------------------------------------------------------
# small helpers


def _nonempty(value: str | None) -> str | None:
    """Empty strings mean "unset": Nix hands unset impure variables over as ""."""
    return value if value else None


def user_password(
    username: str | None, password: str | None, *, user_name: str, pass_name: str, where: str
) -> tuple[str, str] | None:
    """Return (username, password) when both are set, None when neither, UsageError when only one is.

    A lone username is always a mistake (a typo, an unset variable): failing loudly beats silently pulling
    anonymously and getting a confusing 401 later.
    """
    if username and password:
        return username, password
    if username:
        raise UsageError(f"{where}: {user_name} is set but {pass_name} is not")
    if password:
        raise UsageError(f"{where}: {pass_name} is set but {user_name} is not")
    return None


# ---------------------------------------------------------------------------------------------------------
# credentials file (hocker -f / nixpkgs DOCKER_CREDENTIALS)


def _strip_quotes(value: str) -> str:
    """Remove one layer of matching surrounding quotes, as a shell-style env file would."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_credentials_file(path: str) -> Credentials:
    """Read hocker's or nixpkgs' KEY=VALUE credentials file.

    Accepts `BEARER_TOKEN` / `USERNAME` + `PASSWORD` (hocker) and `DOCKER_TOKEN` / `DOCKER_USER` +
    `DOCKER_PASS` (nixpkgs), so one file serves both the CLI and the Nix fetchers. Blank lines and `#`
    comments are skipped, an `export` prefix is allowed, whitespace / CRLF and one layer of surrounding
    quotes are stripped, values may contain `=`; unknown keys are ignored; later lines override earlier ones.
    A token wins over a username/password pair. Any problem is a one-line UsageError naming the file and the
    accepted keys, never a value.
    """
    where = f"credentials file {one_line(path)}"
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file; {_FILE_KEYS_HELP}") from None
    except IsADirectoryError:
        raise UsageError(f"{where}: is a directory; {_FILE_KEYS_HELP}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"{where}: cannot read ({reason}); {_FILE_KEYS_HELP}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{where}: not UTF-8 text; {_FILE_KEYS_HELP}") from None

    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue  # not KEY=VALUE: ignored like an unknown key (and never echoed: it may be a bare secret)
        values[key.strip().upper()] = _strip_quotes(value.strip())

    token = _nonempty(values.get("BEARER_TOKEN")) or _nonempty(values.get("DOCKER_TOKEN"))
    username = _nonempty(values.get("USERNAME")) or _nonempty(values.get("DOCKER_USER"))
    password = _nonempty(values.get("PASSWORD")) or _nonempty(values.get("DOCKER_PASS"))
    # name the keys of the family the user wrote, so the message points at the line to fix
    hocker_style = bool(values.get("USERNAME") or values.get("PASSWORD"))
    user_key, pass_key = ("USERNAME", "PASSWORD") if hocker_style else ("DOCKER_USER", "DOCKER_PASS")
    try:
        pair = user_password(username, password, user_name=user_key, pass_name=pass_key, where=where)
    except UsageError as exc:
        raise UsageError(f"{exc}; {_FILE_KEYS_HELP}") from None
    if token:
        return Credentials(token=token, source=where)
    if pair:
        return Credentials(username=pair[0], password=pair[1], source=where)
    raise UsageError(f"{where}: no usable credentials; {_FILE_KEYS_HELP}")


# ---------------------------------------------------------------------------------------------------------
# environment (the Nix fetchers' impure variables)


@dataclass(frozen=True)
class BuildSetup:
    """What a Nix builder runs under, which decides where credentials can come from."""

    sandbox: bool  # in Nix's sandbox: a user namespace whose chroot holds only store inputs and sandbox paths
    build_user: bool  # as a build user of the daemon (nixbld*), not as the user who ran nix-build


def build_setup(env: Mapping[str, str], uid_map: str = "/proc/self/uid_map") -> BuildSetup:
    """Look, from inside a build, at what it really runs under (not at what nix.conf on this machine says:
    under a daemon that is another process's configuration).

    The sandbox is a user namespace: /proc/self/uid_map is no longer the identity map (and the build directory is
    /build). A build user does not own the store directory; a single-user builder (you) does: inside the sandbox
    too, where the chroot's store directory is created by whoever runs the build (Nix gives it to root when a
    build user runs it)."""
    try:
        with open(uid_map) as f:
            identity = [line.split() for line in f.read().splitlines() if line.strip()] == [["0", "0", "4294967295"]]
    except OSError:
        identity = True
    store = env.get("NIX_STORE") or os.path.dirname(env.get("out", "")) or "/nix/store"
    try:
        build_user = os.stat(store).st_uid != os.getuid()
    except OSError:
        build_user = False
    return BuildSetup(sandbox=not identity or env.get("NIX_BUILD_TOP") == "/build", build_user=build_user)


def nix_build_hint(env: Mapping[str, str] = os.environ, setup: "BuildSetup | None" = None) -> str:
    """What to add to "give credentials" inside a Nix build (NIX_BUILD_TOP is set), "" elsewhere: there the
    builder sees neither the user's shell nor, in the sandbox, files outside it; where the impure variables and a
    credentials file must be depends on whether a daemon's build user or you run the build (build_setup)."""
    if not env.get("NIX_BUILD_TOP"):
        return ""
    setup = setup or build_setup(env)
    if setup.build_user:
        where = "the nix-daemon's environment"
        readable = "group nixbld, mode 0640"
        visible = f"(in extra-sandbox-paths, {readable})" if setup.sandbox else f"({readable})"
        return (f"; inside a Nix build they come from DOCKER_USER/DOCKER_PASS or DOCKER_TOKEN in {where} "
                f"(nix-build's for single-user Nix), or a credentials file visible in the sandbox {visible}"
                if setup.sandbox else
                f"; inside a Nix build they come from DOCKER_USER/DOCKER_PASS or DOCKER_TOKEN in {where}, or a "
                f"credentials file the build users can read {visible}")
    named = "-I DOCKER_CREDENTIALS=PATH or the fetchers' credentialsFile"
    return ("; inside a Nix build they come from DOCKER_USER/DOCKER_PASS or DOCKER_TOKEN in nix-build's own "
            "environment (single-user Nix: the build runs as you), or a credentials file named by "
            f"{named}" + (", listed in nix.conf's extra-sandbox-paths (the sandbox is on)" if setup.sandbox else ""))


def from_environment(env: Mapping[str, str]) -> Credentials | None:
    """Credentials from `DOCKER_TOKEN`, or `DOCKER_USER` + `DOCKER_PASS`; empty strings count as unset.

    These are the impure variables the Nix fetchers pass into the builder; Nix passes unset ones as "".
    A user without a password (or vice versa) is a UsageError naming the variables, not their values.
    """
    token = _nonempty(env.get("DOCKER_TOKEN"))
    pair = user_password(
        _nonempty(env.get("DOCKER_USER")),
        _nonempty(env.get("DOCKER_PASS")),
        user_name="DOCKER_USER",
        pass_name="DOCKER_PASS",
        where="environment",
    )
    if token:
        return Credentials(token=token, source="environment DOCKER_TOKEN")
    if pair:
        return Credentials(username=pair[0], password=pair[1], source="environment DOCKER_USER/DOCKER_PASS")
    return None
