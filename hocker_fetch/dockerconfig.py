"""docker and podman logins as credentials: auth.json / config.json, inline `auth`, credHelpers and credsStore.

The files are searched where podman, skopeo and docker keep them (`config_locations`); keys match the way
docker matches them; credential helpers get the server on standard input, never in argv. Nothing here reads
`os.environ`: the caller passes the environment in (the Nix builder's is nearly empty).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any, Mapping

from .credentials import Credentials, user_password
from .errors import AuthError, UsageError, one_line
from .reference import DOCKER_HUB_HOSTS

__all__ = ["DOCKER_HUB_SERVER_URL", "config_locations", "from_docker_config"]

#: The key `docker login` writes for Docker Hub, and the server URL credential helpers are asked about.
DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
#: What docker-credential-helpers print (on stdout, exit 1) when they hold nothing for a server.
_NOT_FOUND_MARKERS = ("credentials not found", "no credentials server url")
_IDENTITY_TOKEN_USERNAME = "<token>"


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
    pair = user_password(username, password, user_name="username", pass_name="password", where=where)
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
    import shutil
    import subprocess

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
        found = _inline_credentials(auths[key], f"docker config {shown}: auths[{one_line(key)!r}]",
                                    f"docker config {shown}")
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
