"""Issue 18 item 14: hocker-tags lists every tag across pages, as skopeo list-tags does; a tag that is not found
names the closest existing ones.

A fresh reference registry gets one image (skopeo) under several tags (manifest PUTs). That registry
(distribution 2.8) ignores `?n=` and answers every tag at once, so pagination, which it cannot produce, is
served by a small front of our own on 127.0.0.1 (`Paginated`): it pages the real registry's tags the way the
distribution spec says (lexical order, `n`, `last`, `Link: <...>; rel="next"`, as distribution 3 and Docker
Hub do). skopeo list-tags is the peer whose answers must match, through the front and straight from the
registry.
"""
from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from support.background import BackgroundServer
from support.clitools import clean_env, cred_env, registry_args, run
from support.images import DOCKER_MANIFEST, push_ref, run_skopeo

REPO = "fleet/app"
TAGS = ["1.0", "1.1", "1.2", "2.0", "latest", "stable", "v2s2"]


@pytest.fixture
def tagged(registry_factory, test_layout, skopeo_policy):
    reg = registry_factory("plain")
    push_ref(reg, test_layout, "hello", f"{REPO}:v2s2", ["--format", "v2s2"], skopeo_policy)
    manifest = reg.http("GET", f"/v2/{REPO}/manifests/v2s2", headers={"Accept": DOCKER_MANIFEST}).content
    for tag in TAGS:
        r = reg.http("PUT", f"/v2/{REPO}/manifests/{tag}", data=manifest, headers={"Content-Type": DOCKER_MANIFEST})
        assert r.status_code == 201, r.text
    return reg


class Paginated(BackgroundServer):
    """/v2/ and /v2/REPO/tags/list of a real registry, paged per the distribution spec; the paths asked for."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.paths: list[str] = []

    def start(self) -> "Paginated":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                owner.paths.append(self.path)
                parts = urlsplit(self.path)
                headers = {"Content-Type": "application/json", "Docker-Distribution-API-Version": "registry/2.0"}
                if parts.path == "/v2/":
                    return self.answer(200, b"{}", headers)
                real = requests.get(owner.upstream + parts.path, timeout=30)
                if real.status_code != 200 or not parts.path.endswith("/tags/list"):
                    return self.answer(real.status_code, real.content, headers)
                query = parse_qs(parts.query)
                tags = sorted(real.json()["tags"])
                last = query.get("last", [""])[0]
                tags = [t for t in tags if t > last]
                if "n" in query:
                    n = int(query["n"][0])
                    if len(tags) > n:
                        tags = tags[:n]
                        headers["Link"] = f'<{parts.path}?n={n}&last={tags[-1]}>; rel="next"'
                self.answer(200, json.dumps({"name": REPO, "tags": tags}).encode(), headers)

            def answer(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._start_serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler), "paginated")
        return self

    def stop(self) -> None:
        self._stop_serving()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._bound_port('paginated')}"


@pytest.fixture
def paginated(tagged) -> Iterator[Paginated]:
    front = Paginated(tagged.url).start()
    try:
        yield front
    finally:
        front.stop()


def test_pages_are_followed_to_the_end(paginated):
    r = run("hocker-tags", "-n", "2", f"{paginated.host}/{REPO}")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == sorted(TAGS)
    pages = [p for p in paginated.paths if "/tags/list" in p]
    assert pages == [f"/v2/{REPO}/tags/list?n=2"] + [f"/v2/{REPO}/tags/list?n=2&last={t}"
                                                       for t in ("1.1", "2.0", "stable")], pages


def test_same_answer_as_skopeo_list_tags(tagged, paginated):
    """skopeo through the front (it follows the Link pages itself) and straight from the registry."""
    for reg, extra in ((tagged, []), (paginated, ["-n", "3"]), (paginated, ["--page-size", "100"])):
        peer = json.loads(run_skopeo("list-tags", "--tls-verify=false", f"docker://{reg.host}/{REPO}"))
        r = run("hocker-tags", "--json", *extra, reg.host + "/" + REPO)
        assert r.returncode == 0, r.stderr.decode()
        mine = json.loads(r.stdout)
        assert mine == peer, (mine, peer)  # same Repository, same tags in the same order
        assert sorted(mine["Tags"]) == sorted(TAGS)


def test_tags_of_a_private_repository(token_registry):
    r = run("hocker-tags", *registry_args(token_registry), "private/secret", env=cred_env(token_registry))
    assert r.returncode == 0 and r.stdout.decode().split() == ["1"], r.stderr.decode()
    r = run("hocker-tags", *registry_args(token_registry), "private/secret", env=clean_env())
    assert r.returncode == 3


@pytest.mark.parametrize("prog, typo, near", [
    ("hocker-manifest", "stabel", "stable"), ("hocker-config", "lates", "latest"), ("docker2nix", "1.3", "1.2"),
])
def test_a_missing_tag_names_the_closest(tagged, prog, typo, near):
    r = run(prog, f"{tagged.host}/{REPO}:{typo}")
    assert r.returncode == 4
    line = r.stderr.decode().strip().splitlines()[-1]
    match = re.search(r"; closest tags: (.*)$", line)
    assert match and near in match.group(1).split(", "), line
    assert len(match.group(1).split(", ")) <= 3


def test_hocker_lock_add_names_the_closest_too(tagged, tmp_path):
    r = run("hocker-lock", "--file", str(tmp_path / "l.json"), "add", f"{tagged.host}/{REPO}:stabel")
    assert r.returncode == 4 and "closest tags: stable" in r.stderr.decode()
    assert not (tmp_path / "l.json").exists()


def test_missing_repository_and_usage_errors(tagged):
    r = run("hocker-manifest", f"{tagged.host}/no/such:1")
    assert r.returncode == 4 and "the repository no/such itself does not exist" in r.stderr.decode()
    r = run("hocker-tags", f"{tagged.host}/no/such")
    assert r.returncode == 4 and "not found" in r.stderr.decode()
    for args in (["-n", "0", f"{tagged.host}/{REPO}"], [f"{tagged.host}/{REPO}:1.0"]):
        r = run("hocker-tags", *args)
        assert r.returncode == 2 and r.stdout == b"", r.stderr.decode()
