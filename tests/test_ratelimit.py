"""Rate limits: a final 429 says what the registry reports (Docker Hub's ratelimit-* headers) and exits 6;
`hocker-manifest --rate-limit` reads those headers from a HEAD, which does not spend a pull.

The 429s and the headers come from tests/support/faultproxy.py in front of the real plain registry (the
reference registry has no rate limiting): only the answers a test names are changed, everything else is the
registry's own.
"""

from __future__ import annotations

import pytest
from support.clitools import clean_env, run
from support.faultproxy import MANIFEST

from hocker_fetch.transport import describe_rate_limit, rate_limited

REPO, TAG = "library/hello", "oci"
HUB = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600", "docker-ratelimit-source": "192.0.2.7"}


@pytest.mark.parametrize("headers, expected", [
    (HUB, "0 of 100 pulls left per 6 hours"),
    ({"ratelimit-limit": "200;w=3600", "ratelimit-remaining": "199;w=3600"}, "199 of 200 pulls left per 1 hour"),
    ({"ratelimit-limit": "5;w=90"}, "a limit of 5 pulls per 90 seconds"),
    ({"ratelimit-remaining": "3"}, "3 pulls left"),
    ({"ratelimit-limit": "lots"}, None),
    ({}, None),
])
def test_describe_rate_limit(headers, expected):
    assert describe_rate_limit(headers) == expected


def test_rate_limited_message_suggests_login_or_mirror():
    text = rate_limited("registry-1.docker.io", HUB, 5)
    assert text.startswith("rate limited by registry-1.docker.io: 0 of 100 pulls left per 6 hours (gave up after 5")
    assert "log in" in text and "mirror" in text and "\n" not in text


@pytest.mark.parametrize("tool", ["hocker-manifest", "hocker-config", "hocker-image", "docker2nix"])
def test_no_pulls_left_is_final_at_once_exit_6_with_the_numbers(proxy, tool, tmp_path):
    """ratelimit-remaining 0: the window is hours, so no retries are spent waiting for it."""
    proxy.on(None, MANIFEST).status(429, retry_after=1, headers=HUB)
    out = ["-o", str(tmp_path / "out")] if tool == "hocker-image" else []
    r = run(tool, "--registry", proxy.url, REPO, TAG, "--platform", "linux/amd64", "--no-mirrors", *out)
    assert r.returncode == 6, r.stderr.decode()
    [line] = r.stderr.decode().splitlines()
    assert line.startswith(f"{tool}: rate limited by 127.0.0.1:{proxy.port}: 0 of 100 pulls left per 6 hours;"), line
    assert "log in" in line and "mirror" in line
    assert len(proxy.requests(path=MANIFEST)) == 1
    assert not (tmp_path / "out").exists()


def test_429_with_pulls_left_is_retried_then_quoted(proxy):
    """A 429 while the allowance is not used up (a burst limit) is transient: retried, then reported."""
    proxy.on("GET", MANIFEST).status(429, retry_after=0, headers={**HUB, "ratelimit-remaining": "12;w=21600"})
    r = run("hocker-manifest", "--registry", proxy.url, REPO, TAG, "--retries", "1", "--no-mirrors")
    assert r.returncode == 6
    last = r.stderr.decode().splitlines()[-1]
    assert "12 of 100 pulls left per 6 hours (gave up after 1 retries)" in last, last
    assert len(proxy.requests("GET", MANIFEST)) == 2  # the first try and one retry


def test_final_429_without_headers_says_so(proxy):
    proxy.on("GET", MANIFEST).status(429)
    r = run("hocker-manifest", "--registry", proxy.url, REPO, TAG, "--retries", "0", "--no-mirrors")
    assert r.returncode == 6
    [line] = r.stderr.decode().splitlines()
    assert "rate limited by" in line and "sent no ratelimit headers" in line


def test_rate_limit_option_reads_a_head(proxy):
    rule = proxy.on("HEAD", MANIFEST)
    for name, value in {**HUB, "ratelimit-remaining": "76;w=21600"}.items():
        rule.header(name, value)
    r = run("hocker-manifest", "--registry", proxy.url, REPO, TAG, "--rate-limit", env=clean_env())
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == [
        "ratelimit-limit: 100;w=21600", "ratelimit-remaining: 76;w=21600", "docker-ratelimit-source: 192.0.2.7",
        f"127.0.0.1:{proxy.port}: 76 of 100 pulls left per 6 hours"]
    assert [e.method for e in proxy.requests(path=MANIFEST)] == ["HEAD"]  # no GET: no pull spent


def test_rate_limit_option_without_headers(proxy):
    r = run("hocker-manifest", "--registry", proxy.url, REPO, TAG, "--rate-limit")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == f"127.0.0.1:{proxy.port} reports no rate limit (no ratelimit-* headers)\n"


def test_rate_limit_option_when_already_limited(proxy):
    proxy.on("HEAD", MANIFEST).status(429, headers=HUB)
    r = run("hocker-manifest", "--registry", proxy.url, REPO, TAG, "--rate-limit")
    assert r.returncode == 6
    assert "0 of 100 pulls left per 6 hours" in r.stderr.decode()
    assert len(proxy.requests("HEAD", MANIFEST)) == 1  # asked once, no retries


def test_a_rate_limited_mirror_is_skipped(plain_registry, proxy, tmp_path):
    """A mirror that answers 429 costs one request (no retries, no Retry-After wait) and the origin serves."""
    proxy.on(None, ".*").status(429, retry_after=3600, headers=HUB)
    conf = tmp_path / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{plain_registry.host}"\n'
                    f'[[registry.mirror]]\nlocation = "127.0.0.1:{proxy.port}"\n')
    r = run("hocker-config", "--registry", plain_registry.url, REPO, TAG, "--platform", "linux/amd64",
            env=clean_env(CONTAINERS_REGISTRIES_CONF=str(conf)))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == plain_registry.images[f"{REPO}:{TAG}"].single.config_bytes
    [line] = r.stderr.decode().splitlines()
    assert f"skipping mirror 127.0.0.1:{proxy.port} (rate limited by" in line and "0 of 100" in line
    assert len(proxy.requests()) == 1
