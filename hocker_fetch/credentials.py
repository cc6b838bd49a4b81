"""Where registry credentials come from, and in which order they win.

Sources, strongest first (see `resolve`):

1. `--token` (a ready Bearer token);
2. `--username` + `--password`;
3. `--credentials-file` (hocker's `BEARER_TOKEN=` / `USERNAME=` + `PASSWORD=`, or nixpkgs'
   `DOCKER_TOKEN=` / `DOCKER_USER=` + `DOCKER_PASS=`);
4. the environment (`DOCKER_TOKEN`, or `DOCKER_USER` + `DOCKER_PASS`: the impure variables the Nix
   fetchers pass through; Nix passes an unset impure variable as `""`, so empty means unset);
5. docker / podman configuration (`auth.json` / `config.json`, credential helpers).

Nothing here reads `os.environ` or touches global state: the caller passes the environment in, which keeps
the Nix builder (whose environment is nearly empty) and the tests honest. Secrets never appear in a repr, a
str or an exception message: a traceback in a CI log must not leak a registry password.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import AuthError, UsageError, one_line
from .reference import DOCKER_HUB_HOSTS

__all__ = [
    "Credentials",
    "DOCKER_HUB_SERVER_URL",
    "config_locations",
    "from_docker_config",
    "from_environment",
    "parse_credentials_file",
    "resolve",
]

#: The key `docker login` writes for Docker Hub, and the server URL credential helpers are asked about.
DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"

_MASK = "***"
_FILE_KEYS_HELP = (
    "expected BEARER_TOKEN=..., or USERNAME=... and PASSWORD=..."
    " (nixpkgs style: DOCKER_TOKEN=..., or DOCKER_USER=... and DOCKER_PASS=...)"
)
#: What docker-credential-helpers print (on stdout, exit 1) when they hold nothing for a server.
_NOT_FOUND_MARKERS = ("credentials not found", "no credentials server url")
_IDENTITY_TOKEN_USERNAME = "<token>"


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


def _pair(
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
        pair = _pair(username, password, user_name=user_key, pass_name=pass_key, where=where)
    except UsageError as exc:
        raise UsageError(f"{exc}; {_FILE_KEYS_HELP}") from None
    if token:
        return Credentials(token=token, source=where)
    if pair:
        return Credentials(username=pair[0], password=pair[1], source=where)
    raise UsageError(f"{where}: no usable credentials; {_FILE_KEYS_HELP}")


# ---------------------------------------------------------------------------------------------------------
# environment (the Nix fetchers' impure variables)


def from_environment(env: Mapping[str, str]) -> Credentials | None:
    """Credentials from `DOCKER_TOKEN`, or `DOCKER_USER` + `DOCKER_PASS`; empty strings count as unset.

    These are the impure variables the Nix fetchers pass into the builder; Nix passes unset ones as "".
    A user without a password (or vice versa) is a UsageError naming the variables, not their values.
    """
    token = _nonempty(env.get("DOCKER_TOKEN"))
    pair = _pair(
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


# ---------------------------------------------------------------------------------------------------------
# docker / podman configuration


def config_locations(env: Mapping[str, str]) -> list[str]:
    """The auth/config files to search, in order (whether or not they exist).

    $REGISTRY_AUTH_FILE and $XDG_RUNTIME_DIR/containers/auth.json are where podman/skopeo/buildah keep logins;
    $DOCKER_CONFIG/config.json and ~/.docker/config.json are docker's. ~ is $HOME from `env`, never the
    password database: in a Nix builder HOME is /homeless-shelter and must stay that way.
    """
    found: list[str] = []
    if env.get("REGISTRY_AUTH_FILE"):
        found.append(env["REGISTRY_AUTH_FILE"])
    if env.get("XDG_RUNTIME_DIR"):
        found.append(os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    if env.get("DOCKER_CONFIG"):
        found.append(os.path.join(env["DOCKER_CONFIG"], "config.json"))
    if env.get("HOME"):
        found.append(os.path.join(env["HOME"], ".docker", "config.json"))
    return found


def _key_hostname(key: str) -> tuple[str, str]:
    """Split a config key the way docker's ConvertToHostname does: (lower-cased host[:port], path suffix)."""
    rest = key.strip()
    lowered = rest.lower()
    for scheme in ("https://", "http://"):
        if lowered.startswith(scheme):
            rest = rest[len(scheme) :]
            break
    host, slash, path = rest.partition("/")
    return host.lower(), slash + path


def _is_hub(host: str) -> bool:
    return host in DOCKER_HUB_HOSTS


def _key_rank(key: str, registry_host: str) -> int | None:
    """How well a config key names `registry_host`: lower is better, None means it does not match.

    0: the exact key docker writes (`https://index.docker.io/v1/` for Hub, bare `host[:port]` otherwise);
    1: the host with a scheme and/or a version path (`/`, `/v1/`, `/v2/`);
    2: any other path (docker ignores it; podman uses it for per-namespace logins, so it is the last resort).
    """
    host, path = _key_hostname(key)
    if _is_hub(registry_host):
        if not _is_hub(host):
            return None
        if key.strip() == DOCKER_HUB_SERVER_URL:
            return 0
    else:
        if host != registry_host:
            return None
        if key.strip().lower() == registry_host:
            return 0
    return 1 if path.strip("/").lower() in ("", "v1", "v2") else 2


def _matching_keys(mapping: Mapping[str, Any], registry_host: str) -> list[str]:
    """Keys of `mapping` naming `registry_host`, best first (file order breaks ties)."""
    ranked = [(rank, i, key) for i, key in enumerate(mapping) if (rank := _key_rank(key, registry_host)) is not None]
    return [key for _, _, key in sorted(ranked)]


def _normalise_registry_host(registry_host: str) -> str:
    """Accept "host", "host:port", or a URL such as https://registry-1.docker.io/v2/; return host[:port]."""
    host, _ = _key_hostname(registry_host)
    if not host:
        raise UsageError(f"registry host {one_line(registry_host)!r} is empty")
    return host


def _server_url(registry_host: str) -> str:
    """What docker asks a credential helper about: Hub's legacy URL, otherwise the bare host[:port]."""
    return DOCKER_HUB_SERVER_URL if _is_hub(registry_host) else registry_host


def _decode_auth(value: str, where: str) -> tuple[str, str]:
    """Decode an `auth` field (base64 of "user:pass"); errors name the file and key, never the value."""
    compact = "".join(value.split())
    try:
        decoded = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise UsageError(f"{where}: \"auth\" is not base64 of user:password") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise UsageError(f"{where}: \"auth\" does not decode to user:password")
    return username, password


def _inline_credentials(entry: Any, where: str, source: str) -> Credentials | None:
    """Credentials stored inline in an `auths` entry; None when the entry holds nothing (credsStore stubs)."""
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: entry is not a JSON object")
    fields: dict[str, str | None] = {}
    for name in ("auth", "username", "password", "identitytoken", "registrytoken"):
        value = entry.get(name)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{where}: \"{name}\" is not a string")
        fields[name] = value or None
    username, password = fields["username"], fields["password"]
    if fields["auth"]:
        username, password = _decode_auth(fields["auth"], where)
        username, password = username or None, password or None
    token, identity = fields["registrytoken"], fields["identitytoken"]
    if token or identity:
        return Credentials(username=username, password=password, token=token, identity_token=identity, source=source)
    pair = _pair(username, password, user_name="username", pass_name="password", where=where)
    if pair is None:
        return None
    return Credentials(username=pair[0], password=pair[1], source=source)


def _run_helper(
    helper: str, server_url: str, env: Mapping[str, str], timeout: float, origin: str
) -> Credentials | None:
    """Ask `docker-credential-<helper> get` about `server_url` (on stdin, never in argv: argv is public).

    Returns None when the helper is not installed or says it has no credentials for the server, so the search
    falls through to the next source. Any other failure is an AuthError that names the helper, not a secret.
    """
    if not helper or "/" in helper or os.sep in helper or helper != helper.strip():
        raise UsageError(f"{origin}: invalid credential helper name {one_line(helper)!r}")
    program = f"docker-credential-{helper}"
    executable = shutil.which(program, path=env.get("PATH", os.defpath))
    if executable is None:
        return None
    hint = f"(try: echo {server_url} | {program} get)"
    try:
        completed = subprocess.run(
            [executable, "get"],
            input=server_url.encode("utf-8"),
            capture_output=True,
            env=dict(env),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {program} timed out after {timeout:g}s for {server_url} {hint}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise AuthError(f"credential helper {program} could not be run ({reason}) {hint}") from None
    if completed.returncode != 0:
        said = (completed.stdout + b"\n" + completed.stderr).decode("utf-8", "replace").lower()
        if any(marker in said for marker in _NOT_FOUND_MARKERS):
            return None
        if completed.returncode < 0:
            status = f"killed by signal {-completed.returncode}"
        else:
            status = f"exit status {completed.returncode}"
        # The helper's own output is deliberately not quoted: it may contain the secret it failed to format.
        raise AuthError(f"credential helper {program} failed for {server_url} ({status}) {hint}")
    try:
        answer = json.loads(completed.stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AuthError(f"credential helper {program} printed something that is not JSON for {server_url}") from None
    if not isinstance(answer, dict):
        raise AuthError(f"credential helper {program} printed JSON that is not an object for {server_url}")
    username, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(username, (str, type(None))) or not isinstance(secret, (str, type(None))):
        raise AuthError(f"credential helper {program} printed a non-string Username/Secret for {server_url}")
    source = f"credential helper {program} ({origin})"
    if not secret:
        return None  # some helpers answer an empty record instead of "not found"
    if username == _IDENTITY_TOKEN_USERNAME:
        return Credentials(identity_token=secret, source=source)
    if not username:
        raise AuthError(f"credential helper {program} returned a secret without a Username for {server_url}")
    return Credentials(username=username, password=secret, source=source)


def _load_config(path: str) -> dict[str, Any] | None:
    """Parse one auth/config file; None when it does not exist. A broken file is the user's to fix: UsageError."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"docker config {one_line(path)}: cannot read ({reason})") from None
    if not raw.strip():
        return None  # an empty file is what some tools leave behind after logout
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise UsageError(f"docker config {one_line(path)}: not valid JSON{where}") from None
    if not isinstance(data, dict):
        raise UsageError(f"docker config {one_line(path)}: top level is not a JSON object")
    return data


def _from_one_config(
    path: str, data: Mapping[str, Any], registry_host: str, env: Mapping[str, str], timeout: float
) -> Credentials | None:
    """Apply docker's precedence inside one file: credHelpers[host], then credsStore, then inline auths."""
    shown = one_line(path)
    auths = data.get("auths")
    helpers = data.get("credHelpers")
    store = data.get("credsStore")
    auths = {} if auths is None else auths
    helpers = {} if helpers is None else helpers
    store = "" if store is None else store
    if not isinstance(auths, dict):
        raise UsageError(f"docker config {shown}: \"auths\" is not a JSON object")
    if not isinstance(helpers, dict):
        raise UsageError(f"docker config {shown}: \"credHelpers\" is not a JSON object")
    if not isinstance(store, str):
        raise UsageError(f"docker config {shown}: \"credsStore\" is not a string")
    auth_keys = _matching_keys(auths, registry_host)
    server_url = _server_url(registry_host)

    for key in _matching_keys(helpers, registry_host):
        helper = helpers[key]
        if not isinstance(helper, str):
            raise UsageError(f"docker config {shown}: credHelpers[{one_line(key)!r}] is not a string")
        found = _run_helper(helper, server_url, env, timeout, f"credHelpers in {shown}")
        if found is not None:
            return found

    if store:
        # `docker login` with a credsStore leaves an empty auths entry under the exact URL it stored the
        # secret for; ask about that URL first, then the canonical one.
        urls = list(dict.fromkeys([*auth_keys, server_url]))
        for url in urls:
            found = _run_helper(store, url, env, timeout, f"credsStore in {shown}")
            if found is not None:
                return found

    for key in auth_keys:
        found = _inline_credentials(auths[key], f"docker config {shown}: auths[{one_line(key)!r}]", f"docker config {shown}")
        if found is not None:
            return found
    return None


def from_docker_config(
    registry_host: str, env: Mapping[str, str], *, helper_timeout: float = 60.0
) -> Credentials | None:
    """Credentials for `registry_host` from podman/docker config files and credential helpers, or None.

    Files are searched in `config_locations` order; the first file that yields credentials wins, so a
    podman login is not shadowed by a stale docker one. Keys match the way docker matches them (Docker Hub
    under `https://index.docker.io/v1/`, `docker.io` or `index.docker.io`; other registries as
    `host[:port]` with an optional scheme and path). `helper_timeout` bounds each helper run (a GPG-backed
    helper may wait for a pin entry).
    """
    host = _normalise_registry_host(registry_host)
    for path in config_locations(env):
        data = _load_config(path)
        if data is None:
            continue
        found = _from_one_config(path, data, host, env, helper_timeout)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------------------------------------
# the one entry point the CLI uses


def resolve(
    *,
    username: str | None,
    password: str | None,
    token: str | None,
    credentials_file: str | None,
    registry_host: str,
    env: Mapping[str, str],
) -> Credentials | None:
    """Pick the credentials to use, strongest source first; None means pull anonymously.

    Order: `--token`; `--username` + `--password`; `--credentials-file`; the environment
    (`DOCKER_TOKEN`, `DOCKER_USER`/`DOCKER_PASS`); docker/podman config. Explicit options are checked
    even when a stronger one wins (`--username` without `--password` is always a UsageError, an empty
    `--token` too): a half-given option is a mistake worth reporting, not something to paper over.
    Weaker sources are only consulted (helpers only run) when every stronger one is absent.
    """
    if token is not None and token == "":
        raise UsageError("--token is empty")
    if username is not None and username == "":
        raise UsageError("--username is empty")
    if password is not None and password == "":
        raise UsageError("--password is empty")
    pair = _pair(username, password, user_name="--username", pass_name="--password", where="command line")
    if credentials_file is not None and credentials_file == "":
        raise UsageError("--credentials-file is empty")

    if token:
        return Credentials(token=token, source="--token")
    if pair:
        return Credentials(username=pair[0], password=pair[1], source="--username")
    if credentials_file:
        return parse_credentials_file(credentials_file)
    found = from_environment(env)
    if found is not None:
        return found
    return from_docker_config(registry_host, env)
