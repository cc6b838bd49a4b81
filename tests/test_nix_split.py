"""nix/default.nix keeps every derivation when it changes shape (the split by concern into nix/*.nix).

Every derivation the fetchers produce, for a representative set of inputs, is evaluated to its drvPath and
outPath and compared with tests/golden/nix-drvs.json, recorded from the code before the split: the same .drv
means the same builder, arguments and environment, so nothing is rebuilt and no user's pinned store path moves.
The inputs: each docker2nix file of tests/golden/ (single, multi-platform for two systems, SRI, Hub alias names,
digest-only, nested, one platform of an index), the same files made hocker-era (no imageDigest/configDigest),
direct fetcher calls (every branch of fetchDockerConfig, layer options, the manifest, long names), a hocker-lock
file built from tests/golden/multi.lock.json (as a file and as data, for Linux and Mac systems), under every
argument set of nix/default.nix that changes a .drv (cacert, sslCertFile, credentialsFile, mirrors in each form,
a package as `hocker`, the overlay's interpreters and shells) and with `-I DOCKER_CREDENTIALS=...`. The
argument set of nix/default.nix, its attribute names and the functions' formals are recorded too.

Nothing is built or written: `--readonly-mode --store dummy://` computes store paths under /nix/store without a
store, so the recorded paths do not depend on the machine. After a deliberate derivation change, regenerate with
HOCKER_WRITE_NIX_DRVS=1 and say why in the commit.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.nixenv import NIX_DIR, REPO, base_env
from test_lock_nix import entry_from_docker2nix

GOLDEN = REPO / "tests" / "golden"
EXPECTED = GOLDEN / "nix-drvs.json"

SINGLE = ["digest-only", "hub-alt-name", "hub-base32", "hub-sri", "nested", "one-platform-of-index"]
MULTI = ["multi", "multi-sri"]

# Everything below is pure evaluation; `d` turns a derivation into its two paths (no string context: no build).
EXPR = r"""
{ nixDir, golden, hockerEra, lockFile, lockData, mirrorsFile, only ? null }:
let
  str = s: builtins.unsafeDiscardStringContext s;
  d = drv: { drv = str drv.drvPath; out = str drv.outPath; };
  # an evaluation error (a throw) is recorded as such; anything else stops the test
  try = f: x: let r = builtins.tryEval (builtins.deepSeq (f x) (f x)); in if r.success then r.value else "throws";
  image = i: d i // {
    config = d i.imageConfig;
    layers = map d i.imageLayers;
    archive = d i.dockerArchive;
    layout = try d i.ociLayout;
    stream = d i.stream;
    attrs = { inherit (i) image imageDigest indexDigest platform configDigest; };
    passthru = i.passthru.image == i.image && i.passthru.dockerArchive.drvPath == i.dockerArchive.drvPath
      && (try d i.passthru.ociLayout) == (try d i.ociLayout);
  };
  hex = c: builtins.concatStringsSep "" (builtins.genList (_: c) 64);
  hubRegistry = "https://registry-1.docker.io/v2/";

  # `full`: every case; else (an argument set that only adds to every builder's environment) a few of each kind
  some = full: names: if full then names else builtins.filter (n: builtins.elem n [ "hub-base32" "multi" ]) names;
  cases = full: f: {
    golden = builtins.listToAttrs (map (n: { name = n; value = image (import (golden + "/${n}.nix") {
      inherit (f) fetchDockerConfig fetchDockerLayer fetchdocker; }); }) (some full [ @SINGLE@ ]))
      // builtins.listToAttrs (builtins.concatMap (n: map (system: { name = "${n}@${system}"; value = image
        (import (golden + "/${n}.nix") { inherit (f) fetchDockerConfig fetchDockerLayer fetchdocker; inherit system; });
      }) [ "x86_64-linux" "aarch64-linux" "aarch64-darwin" ]) (some full [ @MULTI@ ]));
    hockerEra = builtins.mapAttrs (n: file: image (import file {
      inherit (f) fetchDockerConfig fetchDockerLayer fetchdocker; }))
      (builtins.intersectAttrs (builtins.listToAttrs (map (n: { name = n; value = n; }) (some full [ @SINGLE@ ])))
        hockerEra);

    layer = builtins.mapAttrs (n: args: try d (f.fetchDockerLayer ({ imageName = "x"; } // args))) {
      bare = { layerDigest = hex "a"; };
      prefixed = { layerDigest = "sha256:${hex "a"}"; };
      sha256 = { layerDigest = hex "a"; sha256 = hex "b"; };
      sri = { layerDigest = hex "a"; hash = "sha256-B9L8xEjvISGZRa0X73i8uoXGMkzgDnwl1bCGHXaagqM="; };
      named = { layerDigest = hex "a"; name = "my-layer.tar.gz"; };
      foreign = { layerDigest = hex "a"; foreign = true; };
      elsewhere = { layerDigest = hex "a"; registry = "http://127.0.0.1:5000/v2/"; repository = "a/b"; tag = "t"; };
      unprefixedRepo = { layerDigest = hex "a"; repository = ""; };
      both = { layerDigest = hex "a"; sha256 = hex "b"; hash = "sha256-B9L8xEjvISGZRa0X73i8uoXGMkzgDnwl1bCGHXaagqM="; };
      badDigest = { layerDigest = "sha256:xyz"; };
    };
    config = builtins.mapAttrs (n: args: try (c: d c // { inherit (c) configDigest; })
      (f.fetchDockerConfig ({ imageName = "debian"; tag = "jessie"; } // args))) {
      digest = { configDigest = "sha256:${hex "c"}"; };
      digestNamed = { configDigest = hex "c"; name = "cfg.json"; };
      digestSha256 = { configDigest = hex "c"; sha256 = "18w2k9v1v1mhsljpq3p09hrcd1dspiwfy5xd8ncj28gg932grlh7"; };
      base32 = { sha256 = "18w2k9v1v1mhsljpq3p09hrcd1dspiwfy5xd8ncj28gg932grlh7"; };
      sri = { hash = "sha256-B9L8xEjvISGZRa0X73i8uoXGMkzgDnwl1bCGHXaagqM="; };
      hexHash = { sha256 = "07d2fcc448ef21219945ad17ef78bcba85c6324ce00e7c25d5b0861d769a82a3"; };
      prefixedHash = { sha256 = "sha256:18w2k9v1v1mhsljpq3p09hrcd1dspiwfy5xd8ncj28gg932grlh7"; };
      # a hash Nix takes but the decoder does not (bare base64): hocker-config by tag, or by the pinned manifest
      byTag = { sha256 = "B9L8xEjvISGZRa0X73i8uoXGMkzgDnwl1bCGHXaagqM="; };
      byManifest = { sha256 = "B9L8xEjvISGZRa0X73i8uoXGMkzgDnwl1bCGHXaagqM="; imageDigest = "sha256:${hex "e"}"; };
      nested = { configDigest = hex "c"; registry = "http://127.0.0.1:5000/v2/"; repository = "a/b"; };
      longName = { sha256 = "18w2k9v1v1mhsljpq3p09hrcd1dspiwfy5xd8ncj28gg932grlh7";
                   repository = builtins.concatStringsSep "/" (builtins.genList (_: "deep") 50); };
      noHash = { };
      badDigest = { configDigest = "nope"; };
    };
    manifest = builtins.mapAttrs (n: args: try (m: d m // { inherit (m) imageDigest; })
      (f.fetchDockerManifest ({ imageName = "x"; } // args))) {
      prefixed = { imageDigest = "sha256:${hex "d"}"; };
      bare = { imageDigest = hex "d"; repository = ""; registry = "http://127.0.0.1:5000/v2/"; };
      nested = { imageDigest = hex "d"; repository = "a/b"; };
      badDigest = { imageDigest = "sha256:${hex "D"}"; };
    };
    fetchdocker = builtins.mapAttrs (n: args: if args == null then null else try image (f.fetchdocker ({
      name = "x"; imageName = "x"; tag = "1";
      imageConfig = f.fetchDockerConfig { imageName = "x"; configDigest = hex "c"; };
      imageLayers = [ (f.fetchDockerLayer { imageName = "x"; layerDigest = hex "a"; })
                      (f.fetchDockerLayer { imageName = "x"; layerDigest = hex "b"; foreign = true; }) ];
    } // args))) {
      hockerEra = { };
      pinned = { imageDigest = "sha256:${hex "d"}"; indexDigest = "sha256:${hex "f"}"; platform = "linux/arm64/v8"; };
      elsewhere = { imageDigest = "sha256:${hex "d"}"; registry = "https://quay.io/v2/"; repository = ""; };
      hockerEraElsewhere = { registry = "http://127.0.0.1:5000/v2/"; repository = "a//b/"; };
      image = { imageDigest = "sha256:${hex "d"}"; image = "my/own:name"; };
      manifest = { imageManifest = f.fetchDockerManifest { imageName = "y"; imageDigest = hex "9"; }; };
      longName = { imageDigest = "sha256:${hex "d"}";
                   name = builtins.concatStringsSep "" (builtins.genList (_: "long") 50); };
      # past Nix's 211 characters with a suffix: every output's name is shortened, the stream's too
      longerName = { imageDigest = "sha256:${hex "d"}";
                     name = builtins.concatStringsSep "" (builtins.genList (_: "long") 60); };
    } // (if full then { } else {
      elsewhere = null; hockerEraElsewhere = null; image = null; manifest = null; longName = null;
      longerName = null; });
    # the lock for the fetchers' system; with `full`, for other systems too
    lock = let images = l: builtins.mapAttrs (n: try image) (f.importDockerLock l); in {
      data = images lockData;
      fileIsData = images lockFile == images lockData;
    } // (if !full then { } else builtins.listToAttrs (map (system: { name = system;
      value = builtins.mapAttrs (n: try image) (f.importDockerLockFor system lockData); })
      [ "x86_64-linux" "aarch64-linux" "aarch64-darwin" "x86_64-darwin" "riscv64-linux" ]));
    # a docker2nix --json file is refused (the message is test_lock_nix.py's)
    docker2nixJson = try (l: builtins.mapAttrs (n: image) l) (f.importDockerLock (golden + "/multi.lock.json"));
    registriesConf = if f.registriesConf == null then null else str f.registriesConf;
    values = if !full then null else {
      names = builtins.attrNames f;
      imageNames = builtins.attrNames (f.importDockerLock lockData).multi;
      blobNames = map builtins.attrNames [ (f.fetchDockerLayer { imageName = "x"; layerDigest = hex "a"; })
        (f.fetchDockerConfig { imageName = "x"; configDigest = hex "c"; })
        (f.fetchDockerManifest { imageName = "x"; imageDigest = hex "d"; }) ];
      formals = builtins.mapAttrs (n: v: if builtins.isFunction v then builtins.functionArgs v else null) f;
      familiarName = map (a: f.familiarName a.r a.p a.n) [
        { r = hubRegistry; p = "library"; n = "debian"; } { r = "docker.io"; p = "me"; n = "app"; }
        { r = "https://index.docker.io/v1/"; p = ""; n = "x"; } { r = "http://127.0.0.1:5000/v2/"; p = "a/b"; n = "c"; }
        { r = "quay.io"; p = ""; n = "y"; } ];
      hockerName = map (a: f.hockerName a.r a.p a.n) [
        { r = hubRegistry; p = "library"; n = "debian"; } { r = "http://127.0.0.1:5000/v2/"; p = "a//b/"; n = "c"; }
        { r = "quay.io"; p = ""; n = "y"; } ];
      sha256ToHex = map f.sha256ToHex [
        null (hex "a") "sha256:${hex "a"}" "18w2k9v1v1mhsljpq3p09hrcd1dspiwfy5xd8ncj28gg932grlh7"
        "sha256:18w2k9v1v1mhsljpq3p09hrcd1dspiwfy5xd8ncj28gg932grlh7"
        "sha256-B9L8xEjvISGZRa0X73i8uoXGMkzgDnwl1bCGHXaagqM="
        "sha256-B9L8xEjvISGZRa0X73i8uoXGMkzgDnwl1bCGHXaagqN=" "z8w2k9v1v1mhsljpq3p09hrcd1dspiwfy5xd8ncj28gg932grlh7"
        "e8w2k9v1v1mhsljpq3p09hrcd1dspiwfy5xd8ncj28gg932grlh7" "" (hex "A") "sha512-abc" ];
    };
  };

  plain = { hocker = "/some/fake/hocker"; system = "x86_64-linux"; };
  package = { hocker = { outPath = "/nix/store/00000000000000000000000000000000-hocker-fetch-0.1.0";
                         hockerFetchPython = "libexec/hocker-fetch/python"; system = "aarch64-linux"; }; };
  hubMirror = { registry = [ { prefix = "docker.io"; location = "registry-1.docker.io";
                               mirror = [ { location = "mirror.corp:5000"; } ]; } ]; };
  configs = {
    inherit plain package;
    cacert = plain // { cacert = "/some/fake/cacert"; };
    sslCertFile = plain // { sslCertFile = "/some/fake/ca.pem"; cacert = "/ignored"; };
    credentialsFile = plain // { credentialsFile = "/run/secrets/docker"; };
    credentialsPath = plain // { credentialsFile = /run/secrets/docker-as-path; };
    mirrorsAttrs = plain // { mirrors = hubMirror; };
    mirrorsNone = plain // { mirrors = { }; };
    mirrorsPath = plain // { mirrors = mirrorsFile; };
    mirrorsString = plain // { mirrors = toString mirrorsFile; };
    mirrorsContext = plain // { mirrors = "${builtins.toFile "registries.conf" "# a file in the store\n"}"; };
    mirrorsDerivation = plain // {
      mirrors = { outPath = "/nix/store/11111111111111111111111111111111-registries.conf"; }; };
    python = plain // { python = "/opt/hocker/bin/python3"; shell = "/bin/bash"; };
    overlay = package // {
      cacert = "/nix/store/22222222222222222222222222222222-nss-cacert";
      system = "x86_64-linux";
      python = "/nix/store/33333333333333333333333333333333-hocker-fetch/libexec/hocker-fetch/python";
      shell = "/nix/store/44444444444444444444444444444444-bash/bin/bash";
      runtimePython = "/nix/store/55555555555555555555555555555555-hocker-fetch/libexec/hocker-fetch/python";
      runtimeShell = "/nix/store/66666666666666666666666666666666-bash/bin/bash";
      mirrors = hubMirror;
    };
  };
  chosen = if only == null then configs else { ${only} = configs.${only}; };
in
{
  formals = builtins.functionArgs (import (nixDir + "/default.nix"));
  configs = builtins.mapAttrs
    (n: args: cases (n == "plain" || n == "overlay") (import (nixDir + "/default.nix") args)) chosen;
}
"""


def hocker_era(text: str) -> str:
    """A docker2nix file as hocker wrote it: no imageDigest, configDigest or platform (test_nix_build.py's way)."""
    old = "\n".join(line for line in text.splitlines()
                    if not re.match(r"\s*(imageDigest|configDigest|platform) = ", line))
    return old.replace("inherit tag registry repository imageName imageDigest;",
                       "inherit tag registry repository imageName;") + "\n"


def lock_data() -> dict[str, Any]:
    """A hocker-lock file made from the docker2nix --json golden: the entry as it is, one added by digest (no
    tag), one with a foreign layer under an odd name, one with a nested repository and one system."""
    multi = entry_from_docker2nix(json.loads((GOLDEN / "multi.lock.json").read_text()))
    untagged = dict(multi, tag=None)
    foreign = json.loads(json.dumps(multi))
    for system in foreign["systems"].values():
        system["layers"][-1]["mediaType"] = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    nested = json.loads(json.dumps(multi))
    nested.update(repository="a/b/multi", index=None, platforms=["linux/amd64"])
    del nested["systems"]["aarch64-linux"]
    return {"version": 1, "images": {"multi": multi, "untagged": untagged, "it's foreign": foreign, "c": nested}}


def evaluate(tmp_path: Path) -> dict[str, Any]:
    """Every case's paths, evaluated without a store; and the plain configuration again under -I."""
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "nix.conf").write_text("experimental-features =\n")
    era = tmp_path / "hocker-era"
    era.mkdir(exist_ok=True)
    for name in SINGLE:
        (era / f"{name}.nix").write_text(hocker_era((GOLDEN / f"{name}.nix").read_text()))
    lock = tmp_path / "images.lock.json"
    data = lock_data()
    lock.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    mirrors = tmp_path / "registries.conf"
    mirrors.write_text('[[registry]]\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "mirror.corp:5000"\n')
    expr = tmp_path / "drvs.nix"
    expr.write_text(EXPR.replace("@SINGLE@", " ".join(f'"{n}"' for n in SINGLE))
                    .replace("@MULTI@", " ".join(f'"{n}"' for n in MULTI)))
    env = base_env(NIX_CONF_DIR=str(conf), NIX_STORE_DIR="/nix/store", NIX_STATE_DIR=str(tmp_path / "state"))
    args = ["nix-instantiate", "--readonly-mode", "--store", "dummy://", "--eval", "--strict", "--json",
            str(expr), "--arg", "nixDir", str(NIX_DIR), "--arg", "golden", str(GOLDEN),
            "--arg", "hockerEra", "{ " + " ".join(f'"{n}" = {era / n}.nix;' for n in SINGLE) + " }",
            "--arg", "lockFile", str(lock), "--arg", "lockData", f"builtins.fromJSON {json.dumps(json.dumps(data))}",
            "--arg", "mirrorsFile", str(mirrors)]

    def run(*extra: str) -> Any:
        proc = subprocess.run([*args, *extra], capture_output=True, text=True, env=env, timeout=600,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return json.loads(proc.stdout)

    result = run()
    result["nixPathCredentials"] = run("--argstr", "only", "plain", "-I", "DOCKER_CREDENTIALS=/run/secrets/hub")
    return result


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b.0.drv": path, ...}: a difference names the case it is in."""
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in flatten(sub, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, sub in enumerate(value) for k, v in flatten(sub, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): value}


def test_every_derivation_is_unchanged(tmp_path: Path) -> None:
    """The drvPath and outPath of every case, and the argument and attribute names, are those recorded in
    tests/golden/nix-drvs.json. The recorded set is big enough to mean something: every configuration gives
    distinct blob derivations where it should (a mirror or a CA bundle is in the .drv), the same outPaths
    (the blobs' hashes), and the -I credentials file reaches the .drv."""
    actual = evaluate(tmp_path)
    if os.environ.get("HOCKER_WRITE_NIX_DRVS"):
        EXPECTED.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {EXPECTED}")
    expected = json.loads(EXPECTED.read_text())
    got, want = flatten(actual), flatten(expected)
    changed = sorted(k for k in got.keys() | want.keys() if got.get(k, "<missing>") != want.get(k, "<missing>"))
    assert not changed, f"{len(changed)} differences, e.g.:\n" + "\n".join(
        f"  {k}: {want.get(k, '<missing>')} -> {got.get(k, '<missing>')}" for k in changed[:20])

    # the recording itself covers what it claims to
    configs = actual["configs"]
    layer = {name: c["layer"]["bare"] for name, c in configs.items()}
    # every argument set changes a blob .drv (a mirrors file given as a path or as its name is the same) ...
    assert layer.pop("mirrorsString") == layer["mirrorsPath"]
    assert len({v["drv"] for v in layer.values()}) == len(layer)
    assert len({v["out"] for v in layer.values()}) == 1  # ... never its store path
    assert actual["nixPathCredentials"]["configs"]["plain"]["layer"]["bare"]["drv"] != layer["plain"]["drv"]
    plain = configs["plain"]
    assert plain["layer"]["both"] == plain["layer"]["badDigest"] == plain["config"]["noHash"] == "throws"
    assert plain["docker2nixJson"] == "throws"
    assert plain["hockerEra"]["hub-base32"]["layout"] == "throws"
    assert plain["golden"]["hub-base32"]["layout"] != "throws"
    assert set(plain["lock"]["data"]) == {"multi", "untagged", "it's foreign", "c"}
    assert plain["lock"]["aarch64-darwin"]["c"] == "throws"  # pinned for x86_64-linux only
    assert len(flatten(actual)) > 2000
