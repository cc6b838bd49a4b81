"""Fault injection: the tools, as real processes, against the real registry behind tests/support/faultproxy.

The promise under test: a tool either produces exactly the bytes the digest names, or fails with one clear
line and a distinct exit code, leaving nothing at --out (not even a temp file). Transient faults are retried
a bounded, reported number of times; a broken blob resumes with Range, or restarts when Range is ignored;
Retry-After is obeyed (and capped); Authorization never follows a redirect to another host; an expired
token is replaced.

Timing: the client's backoff starts at 0.5 s and doubles (x0.75-1.25 jitter), so `--retries 2` costs at most
~1.9 s of sleeping; stalls use `--timeout 1`.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import pytest
from support.clitools import run
from support.faultproxy import BLOB, MANIFEST, FaultProxy, blob_path

PLATFORM = ["--platform", "linux/amd64"]
REPO, TAG = "library/hello", "oci"
TAG_MANIFEST = r"/v2/library/hello/manifests/oci$"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Hello:
    """library/hello:oci as served (identical in every registry: pushed with --preserve-digests)."""

    manifest: bytes
    manifest_digest: str
    config: bytes
    config_digest: str
    base_digest: str      # the ~390 KB base layer: big enough to cut mid-stream
    base_size: int
    base: bytes
    top_digest: str
    top: bytes


@pytest.fixture(scope="module")
def hello(plain_registry, blob_bytes) -> Hello:
    pi = plain_registry.images[f"{REPO}:{TAG}"].single
    (base_d, _, base_n), (top_d, _, _) = pi.layers
    base = blob_bytes(plain_registry, REPO, base_d)
    assert len(base) == base_n > 300_000
    return Hello(pi.manifest_bytes, pi.manifest_digest, pi.config_bytes, pi.config_digest, base_d, base_n, base,
                 top_d, blob_bytes(plain_registry, REPO, top_d))





def layer(p: FaultProxy, digest: str, out: Path, *extra: str, retries: int = 2, timeout: float = 5):
    return run("hocker-layer", "--registry", p.url, "--retries", str(retries), "--timeout", str(timeout),
               "--layer", digest, "--out", str(out), *extra, REPO)


def image(p: FaultProxy, out: Path, *extra: str, retries: int = 2, timeout: float = 5):
    return run("hocker-image", "--registry", p.url, *PLATFORM, "--retries", str(retries), "--timeout", str(timeout),
               "--out", str(out), *extra, REPO, TAG)


def manifest(p: FaultProxy, *extra: str, ref: str = TAG, retries: int = 2, timeout: float = 5):
    args = [REPO, ref] if not ref.startswith("sha256:") else [f"{REPO}@{ref}"]
    return run("hocker-manifest", "--registry", p.url, *PLATFORM, "--retries", str(retries),
               "--timeout", str(timeout), *extra, *args)


def lines(r) -> list[str]:
    return r.stderr.decode().strip().splitlines()


def assert_only(directory: Path, *names: str) -> None:
    """Exactly these entries in `directory`: no output where none may be, and no temp file left."""
    assert sorted(os.listdir(directory)) == sorted(names)


# ------------------------------------------------------------------------------------------------
# transient 5xx: retried, output byte-identical; too many: exit 6, one line, nothing written
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [500, 502, 503])
def test_transient_5xx_on_tag_manifest_is_retried(proxy, hello, code):
    proxy.on("GET", TAG_MANIFEST, times=2).status(code)
    r = manifest(proxy)
    assert r.returncode == 0, r.stderr
    assert r.stdout == hello.manifest
    assert [e.status for e in proxy.requests("GET", TAG_MANIFEST)] == [code, code, 200]
    err = r.stderr.decode()
    assert f"HTTP {code}" in err and "retry 1/2" in err and "retry 2/2" in err


def test_transient_5xx_on_blob_is_retried_quietly_with_q(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.base_digest), times=1).status(500)
    proxy.on("GET", blob_path(hello.base_digest), times=1).status(503)
    out = tmp_path / "base.tgz"
    r = layer(proxy, hello.base_digest, out, "-q")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == hello.base
    assert r.stderr == b""  # -q: no retry chatter
    assert r.stdout.decode().strip() == str(out)
    assert [e.status for e in proxy.requests("GET", blob_path(hello.base_digest))] == [500, 503, 200]
    assert_only(tmp_path, "base.tgz")


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_retries_are_bounded_and_reported(proxy, hello, tmp_path, retries):
    """A blob that always fails: exactly 1 + retries requests, each retry on stderr, then one error line."""
    proxy.on("GET", blob_path(hello.base_digest)).status(503)
    out = tmp_path / "base.tgz"
    r = layer(proxy, hello.base_digest, out, retries=retries)
    assert r.returncode == 6, r.stderr
    assert len(proxy.requests("GET", blob_path(hello.base_digest))) == 1 + retries
    err = lines(r)
    assert len(err) == retries + 1
    for i, line in enumerate(err[:-1], 1):
        assert line.startswith("hocker-layer: ") and f"retry {i}/{retries}" in line, err
    assert err[-1].startswith("hocker-layer: ") and hello.base_digest in err[-1]
    assert "HTTP 503" in err[-1] and f"gave up after {retries} retries" in err[-1]
    assert r.stdout == b""
    assert_only(tmp_path)


def test_permanent_5xx_on_manifest_exit_6_and_nothing_written(proxy, hello, tmp_path):
    proxy.on("GET", TAG_MANIFEST).status(502)
    out = tmp_path / "manifest.json"
    r = manifest(proxy, "-q", "--out", str(out))
    assert r.returncode == 6
    assert len(lines(r)) == 1 and "HTTP 502" in r.stderr.decode() and "gave up after 2 retries" in r.stderr.decode()
    assert r.stdout == b""
    assert len(proxy.requests("GET", TAG_MANIFEST)) == 3
    assert_only(tmp_path)


def test_image_with_one_layer_failing_permanently_leaves_nothing(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.top_digest)).status(500)
    out = tmp_path / "hello.tar"
    r = image(proxy, out, "-q", retries=1)
    assert r.returncode == 6, r.stderr
    assert len(lines(r)) == 1 and hello.top_digest in r.stderr.decode()
    assert len(proxy.requests("GET", blob_path(hello.top_digest))) == 2
    assert_only(tmp_path)
    r = image(proxy, tmp_path / "layout", "--format", "oci", "-q", retries=0)
    assert r.returncode == 6, r.stderr
    assert_only(tmp_path)


# ------------------------------------------------------------------------------------------------
# broken connections: resume with Range (206), restart when Range is ignored (200)
# ------------------------------------------------------------------------------------------------
def test_cut_blob_resumes_with_range(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.base_digest), times=1).cut(after=100_000)
    out = tmp_path / "base.tgz"
    r = layer(proxy, hello.base_digest, out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == hello.base
    gets = proxy.requests("GET", blob_path(hello.base_digest))
    assert [(e.range, e.status, e.body_sent) for e in gets] == [
        (None, 200, 100_000), ("bytes=100000-", 206, hello.base_size - 100_000)]
    assert "after 100000 bytes" in r.stderr.decode()
    assert_only(tmp_path, "base.tgz")


def test_cut_blob_with_range_ignored_restarts_from_zero(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.base_digest), times=1).cut(after=100_000)
    proxy.on("GET", blob_path(hello.base_digest)).ignore_range()
    out = tmp_path / "base.tgz"
    r = layer(proxy, hello.base_digest, out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == hello.base
    gets = proxy.requests("GET", blob_path(hello.base_digest))
    assert [(e.range, e.status, e.body_sent) for e in gets] == [
        (None, 200, 100_000), ("bytes=100000-", 200, hello.base_size)]
    assert "ignored Range" in r.stderr.decode()


def test_image_archive_identical_after_cuts_and_ignored_range(proxy, hello, tmp_path):
    """hocker-image writes layers in place (RegionSink): resume and restart must still give the same tar."""
    clean = tmp_path / "clean.tar"
    r = image(proxy, clean)
    assert r.returncode == 0, r.stderr
    proxy.clear()
    proxy.on("GET", blob_path(hello.base_digest), times=1).cut(after=150_000)
    proxy.on("GET", blob_path(hello.top_digest), times=1).cut(after=10_000)
    proxy.on("GET", blob_path(hello.top_digest)).ignore_range()
    faulty = tmp_path / "faulty.tar"
    r = image(proxy, faulty)
    assert r.returncode == 0, r.stderr
    assert faulty.read_bytes() == clean.read_bytes()
    assert [e.status for e in proxy.requests("GET", blob_path(hello.base_digest))] == [200, 206]
    assert [e.status for e in proxy.requests("GET", blob_path(hello.top_digest))] == [200, 200]
    with tarfile.open(faulty) as tf:
        assert tf.extractfile(f"{hello.base_digest[7:]}.tar").read() == hello.base  # type: ignore[union-attr]
    assert_only(tmp_path, "clean.tar", "faulty.tar")


def test_cut_every_time_gives_up_after_retries(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.base_digest)).cut(after=50_000)
    out = tmp_path / "base.tgz"
    r = layer(proxy, hello.base_digest, out, "-q", retries=2)
    assert r.returncode == 6, r.stderr
    gets = proxy.requests("GET", blob_path(hello.base_digest))
    assert [e.range for e in gets] == [None, "bytes=50000-", "bytes=100000-"]
    assert len(lines(r)) == 1 and hello.base_digest in r.stderr.decode()
    assert_only(tmp_path)


# ------------------------------------------------------------------------------------------------
# stalls: fail within the timeout budget; a stall mid-body resumes
# ------------------------------------------------------------------------------------------------
def test_stall_fails_within_timeout(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.base_digest)).stall(30)
    out = tmp_path / "base.tgz"
    t0 = time.monotonic()
    r = layer(proxy, hello.base_digest, out, "-q", retries=1, timeout=1)
    elapsed = time.monotonic() - t0
    assert r.returncode == 6, r.stderr
    assert len(proxy.requests("GET", blob_path(hello.base_digest))) == 2
    # 2 attempts x 1 s timeout + one backoff (<= 0.625 s) + process start-up
    assert 2.0 <= elapsed < 2 * 1 + 0.625 + 3.0, elapsed
    assert "Timeout" in r.stderr.decode() or "timed out" in r.stderr.decode()
    assert_only(tmp_path)


def test_stall_mid_body_resumes(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.base_digest), times=1).stall(30, after=120_000)
    out = tmp_path / "base.tgz"
    t0 = time.monotonic()
    r = layer(proxy, hello.base_digest, out, retries=2, timeout=1)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == hello.base
    gets = proxy.requests("GET", blob_path(hello.base_digest))
    assert len(gets) == 2 and gets[0].body_sent == 120_000 and gets[1].status in (200, 206)
    assert elapsed < 8, elapsed


def test_stall_on_manifest_is_retried(proxy, hello):
    proxy.on("GET", TAG_MANIFEST, times=1).stall(30)
    r = manifest(proxy, timeout=1)
    assert r.returncode == 0, r.stderr
    assert r.stdout == hello.manifest


# ------------------------------------------------------------------------------------------------
# corrupted data: exit 5 naming the digest, nothing at --out, an old --out untouched
# ------------------------------------------------------------------------------------------------
def test_flipped_byte_in_layer_exit_5_old_out_untouched(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.base_digest)).flip(offset=200_000)
    out = tmp_path / "base.tgz"
    out.write_bytes(b"previous content")
    r = layer(proxy, hello.base_digest, out, "-q")
    assert r.returncode == 5, r.stderr
    assert len(lines(r)) == 1 and hello.base_digest in r.stderr.decode()
    assert r.stdout == b""
    assert out.read_bytes() == b"previous content"
    assert_only(tmp_path, "base.tgz")


@pytest.mark.parametrize("with_size", [False, True])
def test_extra_bytes_exit_5(proxy, hello, tmp_path, with_size):
    proxy.on("GET", blob_path(hello.top_digest)).extra(b"trailing garbage")
    out = tmp_path / "top.tgz"
    extra = ["--size", str(len(hello.top))] if with_size else []
    r = layer(proxy, hello.top_digest, out, "-q", *extra)
    assert r.returncode == 5, r.stderr
    assert hello.top_digest in r.stderr.decode()
    assert_only(tmp_path)


def test_flipped_config_exit_5(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.config_digest)).flip(offset=10)
    out = tmp_path / "config.json"
    r = run("hocker-config", "--registry", proxy.url, *PLATFORM, "--retries", "1", "--out", str(out), REPO, TAG)
    assert r.returncode == 5, r.stderr
    assert hello.config_digest in r.stderr.decode() and r.stdout == b""
    assert_only(tmp_path)


def run_watching(directory: Path, target: str, fn):
    """Run fn() in a thread while polling `directory`: (result, target ever seen, temp file ever seen)."""
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("r", fn()))
    seen_target = seen_temp = False
    t.start()
    while t.is_alive():
        names = os.listdir(directory)
        seen_target |= target in names
        seen_temp |= any(".hocker-" in n for n in names)
        time.sleep(0.0005)
    t.join()
    return box["r"], seen_target, seen_temp


@pytest.mark.parametrize("fmt", ["docker-archive", "oci"])
def test_image_with_corrupted_layer_exit_5_never_at_final_name(proxy, hello, tmp_path, fmt):
    proxy.on("GET", blob_path(hello.base_digest)).flip(offset=333_333)
    proxy.on("GET", blob_path(hello.top_digest), times=1).status(503)  # keeps the run going ~0.5 s
    r, seen_target, seen_temp = run_watching(tmp_path, "out", lambda: image(proxy, tmp_path / "out", "--format",
                                                                            fmt, "-q"))
    assert r.returncode == 5, r.stderr
    assert hello.base_digest in r.stderr.decode()
    assert seen_temp and not seen_target  # the watcher saw the run's temp output, never the final name
    assert_only(tmp_path)


def test_short_body_once_is_resumed(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.base_digest), times=1).short(missing=1000)
    out = tmp_path / "base.tgz"
    r = layer(proxy, hello.base_digest, out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == hello.base
    resumed_at = hello.base_size - 1000
    assert [(e.range, e.status) for e in proxy.requests("GET", blob_path(hello.base_digest))] == [
        (None, 200), (f"bytes={resumed_at}-", 206)]


def test_short_body_every_time_fails_and_writes_nothing(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.base_digest)).short(missing=1000)
    out = tmp_path / "base.tgz"
    r = layer(proxy, hello.base_digest, out, "-q")
    assert r.returncode in (5, 6), r.stderr
    assert len(lines(r)) == 1 and hello.base_digest in r.stderr.decode()
    assert len(proxy.requests("GET", blob_path(hello.base_digest))) == 3
    assert_only(tmp_path)


def test_truncated_reply_with_matching_length_is_completed_when_size_known(proxy, hello, tmp_path):
    """A 'complete' reply (Content-Length honest about the truncation) that is shorter than the blob:
    with --size the client knows it is short and fetches the rest with Range."""
    proxy.on("GET", blob_path(hello.base_digest), times=1).short(missing=5000, consistent=True)
    out = tmp_path / "base.tgz"
    r = layer(proxy, hello.base_digest, out, "--size", str(hello.base_size))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == hello.base
    assert [e.range for e in proxy.requests("GET", blob_path(hello.base_digest))] == [
        None, f"bytes={hello.base_size - 5000}-"]


def test_truncated_reply_with_matching_length_fails_closed_without_size(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.base_digest)).short(missing=5000, consistent=True)
    out = tmp_path / "base.tgz"
    r = layer(proxy, hello.base_digest, out, "-q")
    assert r.returncode == 5, r.stderr
    assert hello.base_digest in r.stderr.decode()
    assert_only(tmp_path)


# ------------------------------------------------------------------------------------------------
# Docker-Content-Digest is never trusted; by-digest manifests are verified
# ------------------------------------------------------------------------------------------------
WRONG = "sha256:" + "0" * 64


def test_wrong_docker_content_digest_on_tag_get_is_ignored(proxy, hello):
    proxy.on("GET", MANIFEST).header("Docker-Content-Digest", WRONG)
    r = manifest(proxy)
    assert r.returncode == 0, r.stderr
    assert r.stdout == hello.manifest
    r = manifest(proxy, "--digest")  # with --platform: resolved by GET, digest computed from the bytes
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == hello.manifest_digest
    assert all(e.rule for e in proxy.requests("GET", MANIFEST))


def test_wrong_docker_content_digest_on_blob_is_ignored(proxy, hello, tmp_path):
    proxy.on("GET", BLOB).header("Docker-Content-Digest", WRONG)
    out = tmp_path / "base.tgz"
    r = layer(proxy, hello.base_digest, out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == hello.base


def test_tampered_manifest_by_digest_exit_5(proxy, hello, tmp_path):
    proxy.on("GET", rf"/manifests/{hello.manifest_digest}$").flip(offset=40)
    out = tmp_path / "m.json"
    r = manifest(proxy, "-q", "--out", str(out), ref=hello.manifest_digest)
    assert r.returncode == 5, r.stderr
    assert hello.manifest_digest in r.stderr.decode() and r.stdout == b""
    assert_only(tmp_path)


def test_tampered_child_manifest_of_index_exit_5(proxy, plain_registry):
    info = plain_registry.images["library/multi:oci"]
    child = info.platforms["linux/amd64"].manifest_digest
    proxy.on("GET", rf"/manifests/{child}$").flip(offset=60)
    r = run("hocker-manifest", "--registry", proxy.url, *PLATFORM, "--retries", "1", "library/multi", "oci")
    assert r.returncode == 5, r.stderr
    assert child in r.stderr.decode() and r.stdout == b""


# ------------------------------------------------------------------------------------------------
# 429 / Retry-After
# ------------------------------------------------------------------------------------------------
def _gap_after_first(entries) -> float:
    return entries[1].started - entries[0].started


def test_429_retry_after_seconds_is_obeyed(proxy, hello):
    proxy.on("GET", TAG_MANIFEST, times=1).status(429, retry_after=2)
    r = manifest(proxy)
    assert r.returncode == 0, r.stderr
    assert r.stdout == hello.manifest
    gets = proxy.requests("GET", TAG_MANIFEST)
    assert [e.status for e in gets] == [429, 200]
    assert 1.95 <= _gap_after_first(gets) < 4, _gap_after_first(gets)
    assert "HTTP 429" in r.stderr.decode() and "in 2.0s" in r.stderr.decode()


def test_503_retry_after_http_date_is_obeyed(proxy, hello, tmp_path):
    """The retry waits for the date, measured on the wall clock: the date is fixed before the tool starts, so a
    slow start-up (a loaded machine) shortens the wait, and a gap between the two requests would not show it."""
    wall_minus_mono = time.time() - time.monotonic()
    date = int(time.time()) + 4  # an HTTP date has 1 s resolution
    proxy.on("GET", blob_path(hello.top_digest), times=1).status(503, retry_after=formatdate(date, usegmt=True))
    out = tmp_path / "top.tgz"
    r = layer(proxy, hello.top_digest, out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == hello.top
    first, retry = (e.started + wall_minus_mono for e in proxy.requests("GET", blob_path(hello.top_digest))[:2])
    assert first < date - 0.5, "the tool started too late for the date to mean anything"
    assert date - 0.05 <= retry < date + 4, (retry - date)


def test_retry_after_is_capped(proxy, hello):
    """Retry-After: 3600 with max_retry_after=1 (no CLI flag: through the client API) waits ~1 s, not an hour."""
    from hocker_fetch.client import ClientOptions, RegistryClient
    from hocker_fetch.reference import resolve_reference

    proxy.on("GET", TAG_MANIFEST, times=1).status(429, retry_after=3600)
    ref = resolve_reference(REPO, TAG, proxy.url)
    messages: list[str] = []
    with RegistryClient(ref, None, ClientOptions(retries=1, timeout=5, max_retry_after=1.0), log=messages.append,
                        env={}) as client:
        t0 = time.monotonic()
        raw, _ctype, digest = client.get_manifest(REPO, TAG)
        elapsed = time.monotonic() - t0
    assert raw == hello.manifest and digest == hello.manifest_digest
    assert 0.95 <= elapsed < 3, elapsed
    assert any("in 1.0s" in m for m in messages), messages
    assert ClientOptions().max_retry_after <= 300  # the CLI default cap is bounded too


# ------------------------------------------------------------------------------------------------
# redirects to another host: followed, without the Authorization header
# ------------------------------------------------------------------------------------------------
def test_blob_redirect_to_other_host_drops_authorization(token_proxy, token_registry, hello, tmp_path):
    token_proxy.on("GET", BLOB).redirect()
    out = tmp_path / "base.tgz"
    r = layer(token_proxy, hello.base_digest, out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == hello.base
    redirected = [e for e in token_proxy.requests("GET", BLOB) if e.status == 307]
    assert redirected and all(e.auth_scheme == "Bearer" for e in redirected)  # a token was in play
    store = token_proxy.store.requests()
    assert store and all(s.status == 200 for s in store)
    assert not any(s.authorization for s in store), [s.headers for s in store]
    assert all("bearer" not in " ".join(s.headers.values()).lower() for s in store)


def test_redirected_image_and_resume_at_the_object_store(token_proxy, hello, tmp_path):
    token_proxy.on("GET", BLOB).redirect()
    token_proxy.store.cut_next.append(100_000)  # the first object-store GET longer than that breaks
    out = tmp_path / "hello.tar"
    r = image(token_proxy, out)
    assert r.returncode == 0, r.stderr
    with tarfile.open(out) as tf:
        for digest, data in ((hello.base_digest, hello.base), (hello.top_digest, hello.top),
                             (hello.config_digest, hello.config)):
            names = [n for n in tf.getnames() if digest[7:] in n]
            assert names and tf.extractfile(names[0]).read() == data  # type: ignore[union-attr]
    store = token_proxy.store.requests()
    assert any(s.range == "bytes=100000-" and s.status == 206 for s in store), [(s.range, s.status) for s in store]
    assert not any(s.authorization for s in store)


# ------------------------------------------------------------------------------------------------
# tokens that expire mid-run
# ------------------------------------------------------------------------------------------------
def test_token_rejected_after_expiry_is_renewed(token_proxy, token_server, hello, tmp_path):
    """The token server promises 300 s, but the JWT lapses within ~2 s (registry leeway is 60 s, so
    exp = now - 58). A 429 makes the run outlive it; the registry's 401 must bring a fresh token."""
    token_server.expires_in = 300
    token_server.jwt_lifetime = -58
    token_proxy.on("GET", blob_path(hello.base_digest), times=1, auth=True).status(429, retry_after=4)
    out = tmp_path / "base.tgz"
    r = layer(token_proxy, hello.base_digest, out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == hello.base
    gets = token_proxy.requests("GET", blob_path(hello.base_digest))
    assert [(e.status, e.authorization) for e in gets] == [(401, False), (429, True), (401, True), (200, True)]
    assert len(token_server.snapshot()) == 2


def test_token_renewed_before_advertised_expiry(token_proxy, token_server, hello, tmp_path):
    """expires_in = 6: the client renews ~5 s early, so after a 4 s wait it asks for a new token itself."""
    token_server.expires_in = 6
    token_proxy.on("GET", blob_path(hello.base_digest), times=1, auth=True).status(429, retry_after=4)
    out = tmp_path / "base.tgz"
    r = layer(token_proxy, hello.base_digest, out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == hello.base
    gets = token_proxy.requests("GET", blob_path(hello.base_digest))
    assert [(e.status, e.authorization) for e in gets] == [(401, False), (429, True), (200, True)]
    assert len(token_server.snapshot()) == 2


# ------------------------------------------------------------------------------------------------
# gaps these tests found in the client (all fixed; kept as regression tests)
# ------------------------------------------------------------------------------------------------



@pytest.mark.parametrize("fault", ["cut", "short"])
def test_manifest_body_cut_is_retried(proxy, hello, fault):
    rule = proxy.on("GET", TAG_MANIFEST, times=1)
    rule.cut(after=100) if fault == "cut" else rule.short(missing=10)
    r = manifest(proxy)
    assert r.returncode == 0, r.stderr
    assert r.stdout == hello.manifest


def test_token_server_503_is_retried(token_registry, token_server, hello, tmp_path):
    with FaultProxy(token_server.url) as tp, \
            FaultProxy(token_registry.url, rewrite={token_server.url: tp.url}) as rp:
        tp.on("GET", "/token", times=1).status(503)
        out = tmp_path / "top.tgz"
        r = layer(rp, hello.top_digest, out)
        assert [e.status for e in tp.requests("GET", "/token")][:1] == [503]  # the realm did go through tp
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == hello.top


def test_stall_mid_body_resumes_from_bytes_received(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.base_digest), times=1).stall(30, after=120_000)
    out = tmp_path / "base.tgz"
    r = layer(proxy, hello.base_digest, out, retries=2, timeout=1)
    assert r.returncode == 0, r.stderr
    gets = proxy.requests("GET", blob_path(hello.base_digest))
    assert gets[1].range is not None and gets[1].status == 206, [(e.range, e.status) for e in gets]


def test_image_fails_soon_after_first_permanent_failure(proxy, hello, tmp_path):
    proxy.on("GET", blob_path(hello.top_digest)).status(500)    # fails for good after ~1.5 s of backoff
    proxy.on("GET", blob_path(hello.base_digest)).stall(60)     # would take 3 x 3 s + backoff to give up
    t0 = time.monotonic()
    r = image(proxy, tmp_path / "hello.tar", "-q", retries=2, timeout=3)
    elapsed = time.monotonic() - t0
    assert r.returncode == 6 and hello.top_digest in r.stderr.decode()
    assert_only(tmp_path)
    # first failure (<= ~1.9 s backoff + start-up) + at most one in-flight read timeout (3 s) + slack
    assert elapsed < 7, elapsed
