"""Mirrors in Nix, evaluated (issue 12): nix/toml.nix (the writer behind nix/default.nix's `mirrors` attribute
set) against Python's tomllib, the overlay's `hocker-fetch-mirrors` and lib.mkFetchers passing `mirrors` through,
and the NixOS option `services.hocker-images.mirrors` with the real nixpkgs lib. The builds through a real
pull-through cache are in test_mirrors_nix.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import nixenv
from support.nixenv import NIX_DIR, VENV, Nix
from test_mirrors_nix import to_nix

nix = nixenv.nix  # module-scoped: one throw-away store for this module


# -- the TOML writer -----------------------------------------------------------------------------------------


TOML_CASES: list[dict[str, Any]] = [
    {},
    {"registry": [{"prefix": "docker.io", "location": "registry-1.docker.io",
                   "mirror": [{"location": "mirror.corp:5000", "pull-from-mirror": "digest-only"},
                              {"location": "second.corp/hub", "insecure": True}]},
                  {"prefix": "*.example.com", "blocked": True}],
     "unqualified-search-registries": ["docker.io", "quay.io"], "short-name-mode": "permissive"},
    {"aliases": {"my/app": "quay.io/me/app", "x": 'we"ird\\\n\tname'}, "n": 5, "empty": [],
     "registry": [{"location": "a:1", "mirror": [{"location": "b:2"}]}, {"location": "c:3"}]},
]


def test_toml_writer_round_trips_through_tomllib(nix: Nix) -> None:
    """What nix/toml.nix writes parses (Python's tomllib, what hocker_fetch.mirrors reads it with) to exactly
    the attribute set it was given: strings with quotes, backslashes and control characters, booleans, lists,
    nested tables, arrays of tables (in order: mirror order matters) and keys that need quoting."""
    exprs = " ".join(f"(t {to_nix(case)})" for case in TOML_CASES)
    out = nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr",
                  f"let t = (import {NIX_DIR}/toml.nix).toTOML; in [ {exprs} ]").stdout
    texts = json.loads(out)
    for case, text in zip(TOML_CASES, texts):
        assert tomllib.loads(text) == case, text
    assert texts[0] == ""
    # a table's plain keys come before its sub-tables (TOML would otherwise put them in the sub-table)
    assert texts[1].index("short-name-mode") < texts[1].index("[[registry]]")


TOML_EXAMPLES = 400
# registries.conf-shaped documents and worse: any text (no NUL: Nix strings cannot hold it) in keys and strings,
# booleans, 64-bit-safe integers, lists of scalars, nested tables and arrays of tables
_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)
_scalar = st.one_of(_text, st.booleans(), st.integers(-(2 ** 62), 2 ** 62))
_value = st.recursive(
    st.one_of(_scalar, st.lists(_scalar, max_size=3)),
    lambda inner: st.one_of(st.dictionaries(_text, inner, max_size=3),
                            st.lists(st.dictionaries(_text, inner, max_size=3), min_size=1, max_size=3)),
    max_leaves=12)
TOML_DOCUMENTS = st.dictionaries(_text, _value, max_size=4)


def test_toml_writer_property(nix: Nix, tmp_path: Path) -> None:
    """Generated documents (TOML_EXAMPLES of them, rendered in one evaluation): each parses back to itself."""
    docs: list[dict[str, Any]] = []

    @settings(max_examples=TOML_EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(TOML_DOCUMENTS)
    def collect(doc: dict[str, Any]) -> None:
        docs.append(doc)

    collect()
    assert len(docs) >= TOML_EXAMPLES
    data = tmp_path / "docs.json"
    data.write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
    out = nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr",
                  f"map (import {NIX_DIR}/toml.nix).toTOML (builtins.fromJSON (builtins.readFile {data}))").stdout
    texts = json.loads(out)
    assert len(texts) == len(docs)
    for doc, text in zip(docs, texts):
        assert tomllib.loads(text) == doc, (doc, text)


@pytest.mark.parametrize("value, key", [
    ('{ registry = [ { location = null; } ]; }', "registry.location is a null"),
    ('{ n = 1.5; }', "n is a float"),
    ('{ l = [ "a" { b = 1; } ]; }', "l is a list"),
    ('[ ]', "the mirror settings must be an attribute set, not a list"),
])
def test_toml_writer_refuses_what_toml_cannot_hold(nix: Nix, value: str, key: str) -> None:
    proc = nix.run("nix-instantiate", "--eval", "--strict", "--expr",
                   f"(import {NIX_DIR}/toml.nix).toTOML ({value})", check=False)
    assert proc.returncode != 0 and f"hocker-fetch: registries.conf: {key}" in proc.stderr, proc.stderr


# -- the overlay and the flake's mkFetchers --------------------------------------------------------------------


def test_overlay_and_mkfetchers_pass_mirrors_through(nix: Nix, tmp_path: Path) -> None:
    """`hocker-fetch-mirrors`, set in an overlay after or before hocker-fetch's, reaches the overlay's fetchers;
    unset, the fetchers carry no registries.conf (the environment's is used). lib.mkFetchers passes `mirrors`
    to nix/default.nix as it is. The output path never changes."""
    from test_nix_build import fake_nixpkgs_package, stub_nixpkgs

    stub = stub_nixpkgs(tmp_path / "nixpkgs-stub", fake_nixpkgs_package(tmp_path / "pkgs", None))
    hex_ = "4" * 64
    conf = {"registry": [{"prefix": "docker.io", "location": "registry-1.docker.io",
                          "mirror": [{"location": "mirror.corp:5000", "pull-from-mirror": "digest-only"}]}]}
    setting = f"(final: prev: {{ hocker-fetch-mirrors = {to_nix(conf)}; }})"
    ours = f"(import {nixenv.REPO}/overlay.nix)"
    # --read-write-mode: --eval alone computes toFile's store path without writing the file
    out = json.loads(nix.run("nix-instantiate", "--eval", "--read-write-mode", "--strict", "--json", "--expr", f"""
let
  layer = overlays: (import {stub} {{ inherit overlays; }}).fetchDockerLayer
    {{ imageName = "x"; layerDigest = "{hex_}"; }};
  show = l: {{ conf = l.hockerRegistriesConf or null; out = l.outPath; }};
  mk = (import {nixenv.REPO}/flake.nix).outputs {{ self = {{ }}; nixpkgs = {{ }}; }};
  viaLib = (mk.lib.mkFetchers
    {{ hocker = {json.dumps(str(VENV))}; system = "x86_64-linux"; mirrors = {to_nix(conf)}; }})
    .fetchDockerLayer {{ imageName = "x"; layerDigest = "{hex_}"; }};
in [ (show (layer [ {ours} ])) (show (layer [ {ours} {setting} ])) (show (layer [ {setting} {ours} ]))
     (show viaLib) ]""").stdout)
    none, after, before, via_lib = out
    assert none["conf"] is None
    assert after["conf"] == before["conf"] == via_lib["conf"] and after["conf"].endswith("-registries.conf")
    assert tomllib.loads(Path(after["conf"]).read_text()) == conf
    assert none["out"] == after["out"] == before["out"] == via_lib["out"]


# -- the NixOS option --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module(nix: Nix):
    from test_nixos_module import Module, find_nixpkgs_lib

    lib, why = find_nixpkgs_lib()
    if lib is None:
        pytest.skip(why)
    return Module(nix, lib)


# nix.settings.extra-sandbox-paths as NixOS declares it (nixos/modules/config/nix.nix: a list of strings that
# concatenates across definitions); the shared stub keeps nix.settings freeform, where lists must be equal.
TYPED_SANDBOX_PATHS = """({ lib, ... }: { options.nix.settings = lib.mkOption { type = lib.types.submodule {
  options.extra-sandbox-paths = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; }; }; }; })"""

WIRING = ("{ env = c.systemd.services.nix-daemon.environment or { }; sandbox = c.nix.settings.extra-sandbox-paths; "
          "etc = c.environment.etc; }")


def test_nixos_option_wires_the_daemon_and_the_sandbox(module, tmp_path: Path) -> None:
    """services.hocker-images.mirrors (attribute set, path literal, or podman's own registries.conf from
    environment.etc): the nix-daemon's CONTAINERS_REGISTRIES_CONF names a store file with that content, and the
    same file is in extra-sandbox-paths (a store path there brings its closure into the sandbox). Works without
    `enable`; with `enable` and images too; nothing is set without it."""
    conf = {"registry": [{"prefix": "docker.io", "location": "registry-1.docker.io",
                          "mirror": [{"location": "mirror.corp:5000", "pull-from-mirror": "digest-only"}]}]}
    literal = tmp_path / "registries.conf"
    literal.write_text('[[registry]]\nlocation = "quay.io"\n[[registry.mirror]]\nlocation = "m.corp"\n')
    podman_text = '[[registry]]\nlocation = "ghcr.io"\n[[registry.mirror]]\nlocation = "ghcr-cache.corp"\n'
    cases = {
        "attrs": (f"{{ services.hocker-images.mirrors = {to_nix(conf)}; }}", conf),
        "literal": (f"{{ services.hocker-images.mirrors = {literal}; }}", tomllib.loads(literal.read_text())),
        "podman": (f"""{{ config, ... }}: {{
            environment.etc."containers/registries.conf".source =
              builtins.toFile "registries.conf" {json.dumps(podman_text)};
            services.hocker-images.mirrors = config.environment.etc."containers/registries.conf".source;
          }}""", tomllib.loads(podman_text)),
        "with-images": ("""{ fakeImage, ... }: { services.hocker-images = { enable = true;
            images = [ (fakeImage "one") ]; mirrors = """ + to_nix(conf) + "; }; }", conf),
    }
    def wiring(config: str) -> dict[str, Any]:
        conf = f"{{ imports = [ {TYPED_SANDBOX_PATHS} ({config}) ]; }}"
        expr = f"let c = import {module.file} {{ conf = {conf}; }}; in {WIRING}"
        # --read-write-mode: --eval alone computes toFile's store path without writing the file
        return json.loads(module.nix.run("nix-instantiate", "--eval", "--read-write-mode", "--strict", "--json",
                                         "--expr", expr).stdout)

    for name, (config, expected) in cases.items():
        got = wiring(config)
        path = got["env"]["CONTAINERS_REGISTRIES_CONF"]
        assert got["sandbox"] == [path], name
        assert path.startswith(str(module.nix.store) + "/") and path.endswith("registries.conf"), path
        assert tomllib.loads(Path(path).read_text()) == expected, name
    # merged with the machine's own sandbox paths and daemon environment
    both = wiring(f"""{{ services.hocker-images.mirrors = {to_nix(conf)};
        nix.settings.extra-sandbox-paths = [ "/etc/ssl" ];
        systemd.services.nix-daemon.environment.http_proxy = "http://proxy:3128"; }}""")
    assert len(both["sandbox"]) == 2 and "/etc/ssl" in both["sandbox"]
    assert both["env"]["http_proxy"] == "http://proxy:3128" and "CONTAINERS_REGISTRIES_CONF" in both["env"]
    assert module.eval("{ }", "c.systemd.services") == {}
    assert module.eval("{ services.hocker-images.mirrors = null; }", "c.nix.settings") == {}
    assert wiring("{ }")["sandbox"] == [] and wiring("{ }")["env"] == {}


@pytest.mark.parametrize("value", ['"/etc/containers/registries.conf"', '"registries.conf"', "42"])
def test_nixos_option_refuses_a_file_the_sandbox_cannot_see(module, value: str) -> None:
    """A plain string outside the store: the daemon's sandbox would not show it, and pure evaluation cannot copy
    it. The error names the option and what to give instead."""
    err = module.error(f"{{ services.hocker-images.mirrors = {value}; }}", "c.systemd.services")
    assert "services.hocker-images.mirrors" in err and "is not of type" in err, err
    assert "registries.conf file in the Nix store" in err, err
