"""Keyless signatures (Fulcio certificate + Rekor SET) of our own test CA and log, through the real tools and a
real registry (issue 20): one valid, and one variant per rule, each refused with exit 8 and one line."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from support.cosign import RekorLog, TestCA, keyless_layer, new_key, push_signatures
from support.signedenv import hocker_manifest, start_signed_registry, write_policy, write_registries_d

EMAIL, ISSUER = "release@example.org", "https://issuer.example.com"


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory, test_pki, test_layout, skopeo_policy) -> Iterator:
    server = start_signed_registry(tmp_path_factory.mktemp("keyless-registry"), test_pki, test_layout, skopeo_policy)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("keyless-trust")
    ca, log = TestCA(), RekorLog()
    (d / "ca.pem").write_bytes(ca.root_pem)
    (d / "rekor.pub").write_bytes(log.public_pem)
    return {"ca": ca, "log": log, "ca.pem": d / "ca.pem", "rekor.pub": d / "rekor.pub"}


def judge(reg, trust: dict, tmp_path: Path, layer) -> object:
    digest = reg.images["library/hello:oci"].digest
    push_signatures(reg, "library/hello", digest, [layer])
    req = {"type": "sigstoreSigned",
           "fulcio": {"caPath": str(trust["ca.pem"]), "oidcIssuer": ISSUER, "subjectEmail": EMAIL},
           "rekorPublicKeyPath": str(trust["rekor.pub"]), "signedIdentity": {"type": "matchRepository"}}
    policy = write_policy(tmp_path / "policy.json", {reg.host: [req]})
    return hocker_manifest(reg, "library/hello", "oci", policy=policy, registries_d=write_registries_d(tmp_path / "d"))


def layer_for(reg, trust: dict, **kw):
    digest = reg.images["library/hello:oci"].digest
    kw.setdefault("email", EMAIL)
    kw.setdefault("issuer", ISSUER)
    return keyless_layer(kw.pop("ca", trust["ca"]), kw.pop("log", trust["log"]), digest,
                         f"{reg.host}/library/hello", **kw)


def test_valid_keyless_signature(reg, trust, tmp_path):
    r = judge(reg, trust, tmp_path, layer_for(reg, trust))
    assert r.returncode == 0, r.stderr


def refused(r, *words: str) -> None:
    err = r.stderr.decode()
    assert r.returncode == 8, err
    assert r.stdout == b"" and len(err.strip().splitlines()) == 1, err
    assert "sigstoreSigned fulcio" in err
    for w in words:
        assert w in err.lower(), err


def test_certificate_from_another_ca(reg, trust, tmp_path):
    refused(judge(reg, trust, tmp_path, layer_for(reg, trust, ca=TestCA("another-ca"))))


def test_another_issuer(reg, trust, tmp_path):
    refused(judge(reg, trust, tmp_path, layer_for(reg, trust, issuer="https://accounts.example.net")))


def test_another_email(reg, trust, tmp_path):
    refused(judge(reg, trust, tmp_path, layer_for(reg, trust, email="intruder@example.org")), "email")


def test_certificate_expired_before_integrated_time(reg, trust, tmp_path):
    now = int(time.time())
    key = new_key()
    cert = trust["ca"].issue(key, EMAIL, ISSUER, datetime.fromtimestamp(now - 3600, tz=timezone.utc),
                             lifetime=timedelta(minutes=10))
    refused(judge(reg, trust, tmp_path, layer_for(reg, trust, integrated_time=now, cert=cert, key=key)))


def test_set_signed_by_another_key(reg, trust, tmp_path):
    refused(judge(reg, trust, tmp_path, layer_for(reg, trust, log=RekorLog())), "rekor")


def test_entry_that_does_not_match_the_signature(reg, trust, tmp_path):
    from support.cosign import BUNDLE

    good = layer_for(reg, trust)
    other = layer_for(reg, trust)  # another ephemeral key, another signature: its entry names those
    mixed = type(good)(good.payload, dict(good.annotations, **{BUNDLE: other.annotations[BUNDLE]}))
    refused(judge(reg, trust, tmp_path, mixed))
