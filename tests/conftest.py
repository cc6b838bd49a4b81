"""Session fixtures that run REAL components: the reference registry in three auth modes, a token
server, and skopeo-pushed deterministic images. Nothing is mocked.

Deliberately does not import hocker_fetch, so the infrastructure works while the package grows.

Hypothesis profiles (see _load_hypothesis_profile): "ci" when CI is set (`.ci/run` runs with CI=true),
"dev" otherwise; HYPOTHESIS_PROFILE=ci|dev chooses explicitly, and pytest's --hypothesis-profile wins over both.

Fixtures:
  plain_registry / basic_registry / token_registry  (session) started + seeded RegistryServer
  any_registry       (session, parametrised over the three modes)
  token_server       (function) token_registry's TokenServer, requests cleared, settings restored
  registry_factory   (function) start EMPTY registries: registry_factory("plain"|"basic"|"token")
  test_pki, test_layout, skopeo_policy, infra_root    (session) the building blocks
  skopeo_args, blob_bytes, manifest_http              the helper functions from support.images
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator, Mapping

import pytest
from hypothesis import HealthCheck, settings

# `support` lives next to this file; make it importable whatever pytest's rootdir/import mode is.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from support import images as _images  # noqa: E402
from support.pki import Pki, make_pki  # noqa: E402
from support.registry import REGISTRY_BIN, RegistryServer  # noqa: E402

# Hypothesis profiles. Both leave max_examples to each test and turn off what depends on the machine's load,
# not on the code: the per-example deadline and the "data generation is too slow" health check (2 shared cores
# can stall any example for seconds).
#   ci:  derandomized: the examples are derived from each test function, so every run on any machine tests
#        the same inputs and a failure reproduces; no example database. (--hypothesis-seed has no effect.)
#   dev: random, a new exploration every run (--hypothesis-seed=N replays one), with the local example
#        database (.hypothesis/, git-ignored) so a failure found once is tried first next time.
# A test's own @settings override the profile key by key, so tests must not set derandomize or database (the
# profiles would stop meaning anything), and one that sets suppress_health_check (which replaces the list,
# it does not extend it) lists HealthCheck.too_slow too.
# Both start from Hypothesis' own "default" profile: without a parent they would inherit whatever profile is
# loaded when this runs, and Hypothesis loads its built-in "ci" by itself whenever CI is set at all.
_BASE = settings.get_profile("default")
settings.register_profile("ci", _BASE, deadline=None, derandomize=True, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", _BASE, deadline=None, derandomize=False, suppress_health_check=[HealthCheck.too_slow])


def _load_hypothesis_profile(env: Mapping[str, str] = os.environ) -> str:
    name = env.get("HYPOTHESIS_PROFILE") or (
        "ci" if env.get("CI", "").strip().lower() not in ("", "0", "false", "no") else "dev")
    settings.load_profile(name)  # an unknown name is an error that lists the registered ones
    return name


_load_hypothesis_profile()


def _require_tools() -> None:
    missing = [t for t in (REGISTRY_BIN, "skopeo", "htpasswd", "openssl") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing real components {missing}: run scripts/setup-deps", pytrace=False)


@pytest.fixture(scope="session")
def infra_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tmp root for PKI, layout and registry storage/logs (kept by pytest for post-mortems)."""
    _require_tools()
    return tmp_path_factory.mktemp("hocker-infra")


@pytest.fixture(scope="session")
def test_pki(infra_root: Path) -> Pki:
    return make_pki(infra_root / "pki")


@pytest.fixture(scope="session")
def test_layout(infra_root: Path) -> Path:
    """The deterministic OCI layout every registry is seeded from (refs: see images.PUSH_PLAN)."""
    path = infra_root / "layout"
    _images.build_test_layout(path)
    return path


@pytest.fixture(scope="session")
def skopeo_policy(infra_root: Path) -> Path:
    return _images.write_policy(infra_root / "policy.json")


def _seeded(mode: str, infra_root: Path, pki: Pki, layout: Path, policy: Path) -> Iterator[RegistryServer]:
    reg = RegistryServer(infra_root / f"registry-{mode}", mode, pki)
    reg.start()
    try:
        reg.images = _images.seed_registry(reg, layout, policy)
        if reg.token_server is not None:
            reg.token_server.clear_requests()  # tests see only their own token traffic
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def plain_registry(infra_root: Path, test_pki: Pki, test_layout: Path, skopeo_policy: Path) -> Iterator[RegistryServer]:
    """http, no auth, seeded."""
    yield from _seeded("plain", infra_root, test_pki, test_layout, skopeo_policy)


@pytest.fixture(scope="session")
def basic_registry(infra_root: Path, test_pki: Pki, test_layout: Path, skopeo_policy: Path) -> Iterator[RegistryServer]:
    """https (trust .ca_file) + htpasswd Basic auth (.username/.password), seeded."""
    yield from _seeded("basic", infra_root, test_pki, test_layout, skopeo_policy)


@pytest.fixture(scope="session")
def token_registry(infra_root: Path, test_pki: Pki, test_layout: Path, skopeo_policy: Path) -> Iterator[RegistryServer]:
    """http + Bearer token auth via .token_server; seeded, plus private/secret:1 (needs credentials)."""
    yield from _seeded("token", infra_root, test_pki, test_layout, skopeo_policy)


@pytest.fixture(scope="session", params=["plain", "basic", "token"])
def any_registry(request: pytest.FixtureRequest) -> RegistryServer:
    """Each seeded registry in turn (tests using it run three times)."""
    return request.getfixturevalue(f"{request.param}_registry")


@pytest.fixture
def token_server(token_registry: RegistryServer):
    """The token registry's token server with a clean request log; expiry settings restored afterwards."""
    ts = token_registry.token_server
    assert ts is not None
    saved = (ts.expires_in, ts.jwt_lifetime)
    ts.clear_requests()
    yield ts
    ts.expires_in, ts.jwt_lifetime = saved
    ts.clear_requests()


@pytest.fixture
def registry_factory(tmp_path: Path, test_pki: Pki) -> Iterator[Callable[..., RegistryServer]]:
    """Start EMPTY registries for tests that push, delete or break things; all stopped at test end."""
    started: list[RegistryServer] = []

    def make(mode: str = "plain", **kw) -> RegistryServer:
        reg = RegistryServer(tmp_path / f"registry-{mode}-{len(started)}", mode, test_pki, **kw)
        started.append(reg)
        return reg.start()

    yield make
    for reg in reversed(started):
        reg.stop()


@pytest.fixture(scope="session")
def skopeo_args() -> Callable[..., list[str]]:
    """skopeo_args(registry, role="" | "src" | "dest") -> flags (tls/cert-dir/authfile) for that registry."""
    return _images.skopeo_args


@pytest.fixture(scope="session")
def blob_bytes() -> Callable[[RegistryServer, str, str], bytes]:
    """blob_bytes(registry, repo, digest) -> verified blob bytes over plain HTTP (own auth)."""
    return _images.blob_bytes


@pytest.fixture(scope="session")
def manifest_http():
    """manifest_http(registry, repo, reference, accept=ACCEPT_ALL, method="GET") -> requests.Response."""
    return _images.manifest_http


@pytest.fixture
def proxy(plain_registry):
    """A fault-injection proxy in front of the plain registry (rules per test; stopped at test end)."""
    from support.faultproxy import FaultProxy

    with FaultProxy(plain_registry.url) as p:
        yield p


@pytest.fixture
def token_proxy(token_registry):
    """The same in front of the token-auth registry."""
    from support.faultproxy import FaultProxy

    with FaultProxy(token_registry.url) as p:
        yield p
