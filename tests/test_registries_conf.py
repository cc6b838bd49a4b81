"""registries.conf as containers/image reads it: which files, in which order, how entries merge, how a
prefix matches (wildcards, longest prefix), how locations with paths are rewritten, and what is an error.

Units on the parser (no servers); tests/test_mirrors.py runs the tools through real mirrors.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def _load(tmp_path: Path, main: str, **env: str):
    from hocker_fetch.mirrors import load_config

    path = tmp_path / "main.conf"
    path.write_text(main)
    return load_config({"CONTAINERS_REGISTRIES_CONF": str(path), "XDG_CONFIG_HOME": str(tmp_path / "xdg"), **env})


@pytest.mark.parametrize("name, prefix, length", [
    ("docker.io/library/busybox", "docker.io", 9),
    ("docker.io/library/busybox", "docker.io/library", 17),
    ("docker.io/library/busybox", "docker.io/library/busybox", 25),
    ("docker.io/library/busybox", "docker.io/lib", -1),  # not at a component boundary
    ("docker.io/library/busybox", "docker", -1),
    ("example.com:5000/a", "example.com", 11),  # containers/image's documented quirk
    ("sub.example.com/a/b", "*.example.com", 15),
    ("a.sub.example.com/x", "*.example.com", 17),
    ("example.com/a", "*.example.com", -1),  # the wildcard needs a subdomain
    ("other.com/sub.example.com/a", "*.example.com", -1),  # only in the host part
    ("sub.example.community/a", "*.example.com", -1),
])
def test_match_prefix(name, prefix, length):
    from hocker_fetch.mirrors import match_prefix

    assert match_prefix(name, prefix) == length


def test_longest_prefix_wins_and_paths_are_rewritten(tmp_path):
    cfg = _load(tmp_path, """
unqualified-search-registries = ["docker.io"]   # none of our business

[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "hub-mirror.local:5000/dockerhub"

[[registry]]
prefix = "docker.io/library"
location = "docker.io/library"
[[registry.mirror]]
location = "official.local/lib/"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tags.local/lib"
pull-from-mirror = "tag-only"

[[registry]]
prefix = "*.corp.example"
[[registry.mirror]]
location = "cache.local/corp"
insecure = true
""")
    from hocker_fetch.mirrors import Source

    origin = Source("registry-1.docker.io", "library/busybox", False, False)
    assert cfg.sources("registry-1.docker.io", "library/busybox", True) == [
        Source("official.local", "lib/busybox", False, True), origin]
    assert cfg.sources("registry-1.docker.io", "library/busybox", False) == [
        Source("tags.local", "lib/busybox", False, True), origin]
    assert cfg.sources("registry-1.docker.io", "user/app", True) == [
        Source("hub-mirror.local:5000", "dockerhub/user/app", False, True),
        Source("registry-1.docker.io", "user/app", False, False)]
    assert cfg.sources("git.corp.example", "team/app", False) == [
        Source("cache.local", "corp/team/app", True, True), Source("git.corp.example", "team/app", False, False)]
    assert cfg.sources("corp.example", "x", True) == [Source("corp.example", "x", False, False)]
    assert cfg.sources("quay.io", "a/b", True) == [Source("quay.io", "a/b", False, False)]


def test_mirror_by_digest_only_and_flags_come_first(tmp_path):
    from hocker_fetch.mirrors import load_config, parse_mirror_flag

    path = tmp_path / "r.conf"
    path.write_text('[[registry]]\nlocation = "quay.io"\nmirror-by-digest-only = true\n'
                    '[[registry.mirror]]\nlocation = "m.local"\n')
    flag = parse_mirror_flag("127.0.0.1:5000/quay", insecure=False)
    cfg = load_config({"CONTAINERS_REGISTRIES_CONF": str(path), "XDG_CONFIG_HOME": str(tmp_path)}, [flag])
    assert [s.host for s in cfg.sources("quay.io", "a/b", True)] == ["127.0.0.1:5000", "m.local", "quay.io"]
    assert cfg.sources("quay.io", "a/b", True)[0].repository == "quay/a/b"
    assert [s.host for s in cfg.sources("quay.io", "a/b", False)] == ["quay.io"]  # tags: the origin only


def test_drop_ins_in_order_later_replaces_earlier(tmp_path):
    drop = tmp_path / "xdg" / "containers" / "registries.conf.d"
    drop.mkdir(parents=True)
    (drop / "10-a.conf").write_text('[[registry]]\nlocation = "quay.io"\n[[registry.mirror]]\nlocation = "a.local"\n')
    (drop / "20-b.conf").write_text('[[registry]]\nlocation = "quay.io"\n[[registry.mirror]]\nlocation = "b.local"\n')
    (drop / "30-c.conf.disabled").write_text("not toml [[[")
    (drop / "sub.conf").mkdir()
    cfg = _load(tmp_path, '[[registry]]\nlocation = "quay.io"\n[[registry.mirror]]\nlocation = "main.local"\n')
    assert [s.host for s in cfg.sources("quay.io", "a/b", True)] == ["b.local", "quay.io"]
    assert [Path(f).name for f in cfg.files][-2:] == ["10-a.conf", "20-b.conf"]


def test_which_files_are_read(tmp_path):
    from hocker_fetch.mirrors import SYSTEM_CONF, config_paths

    user = tmp_path / "xdg" / "containers"
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    assert config_paths(env) == (SYSTEM_CONF, False, [SYSTEM_CONF + ".d", str(user / "registries.conf.d")])
    user.mkdir(parents=True)
    (user / "registries.conf").write_text("")
    # the user's file replaces the system's, and then only the user's drop-ins count
    assert config_paths(env) == (str(user / "registries.conf"), False, [str(user / "registries.conf.d")])
    assert config_paths({**env, "CONTAINERS_REGISTRIES_CONF": "/x.conf"})[:2] == ("/x.conf", True)
    home_only = config_paths({"HOME": str(tmp_path / "home")})
    assert home_only[2][-1] == str(tmp_path / "home" / ".config" / "containers" / "registries.conf.d")


@pytest.mark.parametrize("text, message", [
    ("[[registry]\n", "malformed TOML"),
    ('[[registry]]\nlocation = "https://quay.io"\n', "URI schemes are not supported"),
    ('[[registry]]\nprefix = "*.a.com/x"\n', "wildcard prefix"),
    ('[[registry]]\nprefix = "quay.io"\n', "location is unset"),
    ("[[registry]]\ninsecure = true\n", "both location and prefix are unset"),
    ('[[registry]]\nlocation = "q.io"\n[[registry.mirror]]\nlocation = "m"\npull-from-mirror = "some"\n',
     "unsupported pull-from-mirror"),
    ('[[registry]]\nlocation = "q.io"\nmirror-by-digest-only = true\n'
     '[[registry.mirror]]\nlocation = "m"\npull-from-mirror = "all"\n', "cannot be combined"),
    ('[[registry]]\nlocation = "q.io"\npull-from-mirror = "all"\n', "belongs in [[registry.mirror]]"),
    ('[[registry]]\nlocation = "q.io"\nblocked = "yes"\n', "blocked must be true or false"),
    ('registry = ["q.io"]\n', "must be an array of tables"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, text, message):
    from hocker_fetch.errors import UsageError

    with pytest.raises(UsageError) as err:
        _load(tmp_path, text)
    assert message in str(err.value) and str(tmp_path / "main.conf") in str(err.value)
    assert "\n" not in str(err.value)


def test_v1_tables_and_other_keys_are_ignored(tmp_path):
    cfg = _load(tmp_path, '[registries.search]\nregistries = ["docker.io"]\n[aliases]\n"x" = "quay.io/x"\n'
                          'short-name-mode = "enforcing"\n')
    assert cfg.entries == []


def test_a_missing_explicit_file_is_an_error(tmp_path):
    from hocker_fetch.errors import UsageError
    from hocker_fetch.mirrors import load_config

    with pytest.raises(UsageError, match="cannot read registries configuration"):
        load_config({"CONTAINERS_REGISTRIES_CONF": str(tmp_path / "nope.conf"), "XDG_CONFIG_HOME": str(tmp_path)})


@pytest.mark.parametrize("value", ["http://m.local", "m.local/UPPER", "", "m.local:port", "/path"])
def test_bad_mirror_flag(value):
    from hocker_fetch.errors import UsageError
    from hocker_fetch.mirrors import parse_mirror_flag

    with pytest.raises(UsageError):
        parse_mirror_flag(value, insecure=False)


def test_a_file_without_registry_tables_is_not_parsed(tmp_path):
    """podman's stock files (search registries, short-name aliases, even an alias named "registry") are not
    parsed at all: nothing there concerns mirrors, and every tool starts without loading a TOML parser."""
    import subprocess
    import sys

    cfg = _load(tmp_path, 'unqualified-search-registries = ["docker.io"]\n[aliases]\n"registry" = "docker.io/'
                          'library/registry"\nthis is not = TOML ]]\n')
    assert cfg.entries == []
    probe = ("import os, sys; from hocker_fetch.mirrors import load_config; "
             "load_config(os.environ); print('tomllib' in sys.modules)")
    env = {"CONTAINERS_REGISTRIES_CONF": str(tmp_path / "main.conf"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_rewrite_that_is_no_repository_fails_before_any_request(tmp_path):
    from hocker_fetch.errors import UsageError
    from hocker_fetch.mirrors import origin_of

    cfg = _load(tmp_path, '[[registry]]\nprefix = "quay.io/a/b"\nlocation = "quay.io/a/b"\n'
                          '[[registry.mirror]]\nlocation = "m.local"\npull-from-mirror = "digest-only"\n')
    with pytest.raises(UsageError, match="rewrites the image to 'm.local'"):
        origin_of(cfg, "quay.io", "a/b")
    assert origin_of(None, "quay.io", "a/b").host == "quay.io"
