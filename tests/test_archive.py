"""docker-archive / OCI layout writers, checked with real readers: tarfile, GNU tar, skopeo, podman."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hocker_fetch.archive import (
    BLOCK,
    ArchivePlan,
    TarLayout,
    plan_docker_archive,
    plan_oci_layout,
    tar_header,
    write_dir,
    write_tar,
)
from hocker_fetch.atomic import AtomicDir, AtomicFile
from hocker_fetch.errors import ManifestError, UsageError, VerificationError
from hocker_fetch.manifest import Descriptor, Platform, parse_manifest

SKOPEO = shutil.which("skopeo")
PODMAN = shutil.which("podman")
GNUTAR = shutil.which("tar")

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- a test image


def make_layer(rng: random.Random, nfiles: int, compress: bool = True):
    """A reproducible (gzip'd) tar layer of random files; returns (blob, diff_id)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i in range(nfiles):
            data = rng.randbytes(rng.randrange(1, 70000))
            ti = tarfile.TarInfo(f"data/{rng.getrandbits(32):08x}-{i}.bin")
            ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
            tf.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    if not compress:
        return raw, sha256(raw)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as z:
        z.write(raw)
    return gz.getvalue(), sha256(raw)


class Image:
    def __init__(self, seed: int, nlayers: int = 3, oci: bool = False, duplicate: bool = False,
                 compress: bool = True):
        rng = random.Random(seed)
        layers = [make_layer(rng, rng.randrange(1, 4), compress) for _ in range(nlayers)]
        if duplicate:  # the same blob twice, like repeated empty layers
            layers.append(layers[0])
        self.blobs = {sha256(b): b for b, _ in layers}
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"], "Labels": {"seed": str(seed)}},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
            "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
        }
        # deliberately not Go's canonical form: the bytes must be kept as given
        self.config = json.dumps(config, indent=1).encode()
        self.config_digest = sha256(self.config)
        self.layer_mt = OCI_LAYER if oci else DOCKER_LAYER
        if not compress:
            self.layer_mt = self.layer_mt.replace("+gzip", "").replace(".tar.gzip", ".tar")
        self.layers = [{"mediaType": self.layer_mt, "size": len(b), "digest": sha256(b)} for b, _ in layers]
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
            "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "size": len(self.config),
                       "digest": self.config_digest},
            "layers": self.layers,
        }
        self.manifest_media_type = manifest["mediaType"]
        self.manifest = json.dumps(manifest, indent=3).encode()
        self.manifest_digest = sha256(self.manifest)
        self.parsed = parse_manifest(self.manifest, self.manifest_digest)


def fill(sinks, blobs, *, threads: bool = True, chunk: int = 4096):
    """Write every blob into its sink in reverse order, in chunks, from threads; verify sizes."""
    errors = []

    def one(digest, sink):
        try:
            data = blobs[digest]
            # a false start that the "server" makes us throw away
            sink.write(data[: len(data) // 2])
            sink.restart()
            for i in range(0, len(data), chunk):
                sink.write(data[i : i + chunk])
            sink.verify_complete()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    items = list(sinks.items())[::-1]
    if threads:
        ts = [threading.Thread(target=one, args=item) for item in items]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    else:
        for item in items:
            one(*item)
    assert not errors, errors


def write_docker_archive(path, img: Image, tags=("example.com/hocker/test:1.0",)):
    plan = plan_docker_archive(img.parsed.config, img.config, img.parsed.layers, list(tags))
    with AtomicFile(path) as af:
        sinks = write_tar(plan, af)
        fill(sinks, img.blobs)
    return plan


def write_oci_archive(path, img: Image, tag="1.0", name="example.com/hocker/test:1.0"):
    plan = plan_oci_layout(img.parsed, img.config, ref_name=tag, image_name=name)
    with AtomicFile(path) as af:
        fill(write_tar(plan, af), img.blobs)
    return plan


def write_oci_dir(path, img: Image, tag="1.0", name="example.com/hocker/test:1.0"):
    plan = plan_oci_layout(img.parsed, img.config, ref_name=tag, image_name=name)
    with AtomicDir(path) as ad:
        fill(write_dir(plan, ad), img.blobs)
    return plan


def run(*argv, **kw):
    p = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300, **kw)
    assert p.returncode == 0, f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.fixture
def podman(tmp_path):
    """A throw-away podman store: returns (argv prefix, env).  podman wants a runroot under 50 chars."""
    import tempfile

    short = tempfile.mkdtemp(prefix="hk-", dir="/tmp")
    tmp = tmp_path / "podman-tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    argv = [PODMAN, "--root", os.path.join(short, "r"), "--runroot", os.path.join(short, "rr"),
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    yield argv, env
    shutil.rmtree(short, ignore_errors=True)


def tar_contents(path):
    with tarfile.open(path) as tf:
        out = {}
        for m in tf.getmembers():
            assert m.isfile() and m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.mode == 0o644
            assert m.uname == "" and m.gname == ""
            out[m.name] = tf.extractfile(m).read()
        return out


# --------------------------------------------------------------------------- docker-archive


def test_docker_archive_members_read_back_with_tarfile_and_gnu_tar(tmp_path):
    img = Image(1, duplicate=True)
    out = tmp_path / "img.tar"
    plan = write_docker_archive(out, img, tags=["example.com/hocker/test:1.0", "example.com/hocker/test:latest"])
    cfg_hex = img.config_digest.split(":")[1]
    got = tar_contents(out)
    layer_names = [d["digest"].split(":")[1] + ".tar" for d in img.layers]
    assert list(got) == ["manifest.json", "repositories", cfg_hex + ".json"] + layer_names[:3]  # duplicate stored once
    assert got[cfg_hex + ".json"] == img.config  # exact bytes
    for d in img.layers:
        assert got[d["digest"].split(":")[1] + ".tar"] == img.blobs[d["digest"]]
    assert json.loads(got["manifest.json"]) == [
        {"Config": cfg_hex + ".json",
         "RepoTags": ["example.com/hocker/test:1.0", "example.com/hocker/test:latest"],
         "Layers": layer_names}  # duplicate listed twice
    ]
    top = layer_names[-1][: -len(".tar")]
    assert json.loads(got["repositories"]) == {"example.com/hocker/test": {"1.0": top, "latest": top}}
    assert os.path.getsize(out) == plan.tar_size and plan.tar_size % BLOCK == 0
    if GNUTAR:
        listing = run(GNUTAR, "-tf", str(out)).split()
        assert listing == list(got)
        dest = tmp_path / "x"
        dest.mkdir()
        run(GNUTAR, "-xf", str(out), "-C", str(dest))
        for name, data in got.items():
            assert (dest / name).read_bytes() == data


def test_docker_archive_is_byte_reproducible(tmp_path):
    img = Image(2)
    write_docker_archive(tmp_path / "a.tar", img)
    # sequential, forward order this time
    plan = plan_docker_archive(img.parsed.config, img.config, img.parsed.layers, ["example.com/hocker/test:1.0"])
    with AtomicFile(tmp_path / "b.tar") as af:
        fill(write_tar(plan, af), img.blobs, threads=False, chunk=1 << 20)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


@pytest.mark.skipif(not SKOPEO, reason="skopeo not installed")
def test_skopeo_reads_docker_archive(tmp_path):
    img = Image(3, duplicate=True)
    out = tmp_path / "img.tar"
    write_docker_archive(out, img)
    # dir: keeps the docker schema2 manifest and the config bytes untouched
    run(SKOPEO, "copy", "-q", f"docker-archive:{out}", f"dir:{tmp_path / 'dir'}")
    m = json.loads((tmp_path / "dir" / "manifest.json").read_bytes())
    assert m["config"]["digest"] == img.config_digest
    assert (tmp_path / "dir" / img.config_digest.split(":")[1]).read_bytes() == img.config
    # oci: succeeds too; skopeo converts schema2 -> OCI and re-serialises the config there,
    # so the digest changes but the content must be the same
    run(SKOPEO, "copy", "-q", f"docker-archive:{out}", f"oci:{tmp_path / 'oci'}:x")
    index = json.loads((tmp_path / "oci" / "index.json").read_bytes())
    mdig = index["manifests"][0]["digest"].split(":")[1]
    m = json.loads((tmp_path / "oci" / "blobs" / "sha256" / mdig).read_bytes())
    ocicfg = (tmp_path / "oci" / "blobs" / "sha256" / m["config"]["digest"].split(":")[1]).read_bytes()
    assert json.loads(ocicfg) == json.loads(img.config)


@pytest.mark.skipif(not PODMAN, reason="podman not installed")
@pytest.mark.parametrize("compress", [True, False], ids=["gzip-layers", "plain-layers"])
def test_podman_loads_docker_archive_with_the_config_digest_as_id(tmp_path, podman, compress):
    # gzip'd blobs embedded untouched under <hex>.tar: podman (like docker load) decompresses them
    img = Image(4, duplicate=True, compress=compress)
    out = tmp_path / "img.tar"
    write_docker_archive(out, img)
    pm, env = podman
    text = run(*pm, "load", "-i", str(out), env=env)
    assert "example.com/hocker/test:1.0" in text
    image_id = run(*pm, "inspect", "--format", "{{.Id}}", "example.com/hocker/test:1.0", env=env).strip()
    assert image_id == img.config_digest.split(":")[1]
    assert run(*pm, "inspect", "--format", "{{.Architecture}}/{{.Os}}", image_id, env=env).strip() == "amd64/linux"


# --------------------------------------------------------------------------- OCI layout


def skopeo_ref(oci: bool) -> str:
    """skopeo 1.9 looks a ref name up only among OCI-typed index entries; a docker schema2
    manifest kept as served is read when the layout is named without a ref (its only image)."""
    return ":1.0" if oci else ""


@pytest.mark.parametrize("oci", [True, False], ids=["oci-manifest", "docker-manifest"])
def test_oci_layout_directory(tmp_path, oci):
    img = Image(5, oci=oci, duplicate=True)
    layout = tmp_path / "layout"
    write_oci_dir(layout, img)
    assert (layout / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    index = json.loads((layout / "index.json").read_bytes())
    assert index["schemaVersion"] == 2
    assert index["manifests"] == [{
        "mediaType": img.manifest_media_type,
        "digest": img.manifest_digest,
        "size": len(img.manifest),
        "annotations": {"io.containerd.image.name": "example.com/hocker/test:1.0",
                        "org.opencontainers.image.ref.name": "1.0"},
    }]
    blobs = layout / "blobs" / "sha256"
    assert (blobs / img.manifest_digest.split(":")[1]).read_bytes() == img.manifest
    assert (blobs / img.config_digest.split(":")[1]).read_bytes() == img.config
    for d, b in img.blobs.items():
        assert (blobs / d.split(":")[1]).read_bytes() == b
    assert len(os.listdir(blobs)) == 2 + len(img.blobs)
    assert not [n for n in os.listdir(tmp_path) if ".hocker-" in n]
    if SKOPEO:
        run(SKOPEO, "copy", "-q", f"oci:{layout}{skopeo_ref(oci)}", f"dir:{tmp_path / 'out'}")
        # nothing to convert: skopeo keeps manifest and config as they are
        assert (tmp_path / "out" / "manifest.json").read_bytes() == img.manifest
        assert (tmp_path / "out" / img.config_digest.split(":")[1]).read_bytes() == img.config


@pytest.mark.parametrize("oci", [True, False], ids=["oci-manifest", "docker-manifest"])
@pytest.mark.skipif(not SKOPEO, reason="skopeo not installed")
def test_oci_archive_read_by_skopeo(tmp_path, oci):
    img = Image(6, oci=oci)
    out = tmp_path / "img.tar"
    plan = write_oci_archive(out, img)
    got = tar_contents(out)
    assert list(got) == [n for n, _ in plan.entries]
    assert got["blobs/sha256/" + img.manifest_digest.split(":")[1]] == img.manifest
    run(SKOPEO, "copy", "-q", f"oci-archive:{out}{skopeo_ref(oci)}", f"dir:{tmp_path / 'out'}")
    assert (tmp_path / "out" / "manifest.json").read_bytes() == img.manifest
    assert (tmp_path / "out" / img.config_digest.split(":")[1]).read_bytes() == img.config
    for d, b in img.blobs.items():
        assert (tmp_path / "out" / d.split(":")[1]).read_bytes() == b


@pytest.mark.skipif(not PODMAN, reason="podman not installed")
def test_podman_loads_oci_archive(tmp_path, podman):
    img = Image(7, oci=True)
    out = tmp_path / "img.tar"
    write_oci_archive(out, img)
    pm, env = podman
    run(*pm, "load", "-i", str(out), env=env)
    ids = run(*pm, "images", "--no-trunc", "--format", "{{.ID}}", env=env).split()
    assert ids == [img.config_digest.split(":")[1]] or ids == [img.config_digest]


def test_oci_layout_replaces_previous_layout_atomically(tmp_path):
    layout = tmp_path / "layout"
    write_oci_dir(layout, Image(8))
    img = Image(9)
    write_oci_dir(layout, img)
    index = json.loads((layout / "index.json").read_bytes())
    assert index["manifests"][0]["digest"] == img.manifest_digest
    assert sorted(os.listdir(layout / "blobs" / "sha256")) == sorted(
        [d.split(":")[1] for d in [img.manifest_digest, img.config_digest, *img.blobs]])
    assert sorted(os.listdir(tmp_path)) == ["layout"]


def test_oci_layout_without_tag_or_name_has_no_annotations():
    img = Image(10, nlayers=1)
    plan = plan_oci_layout(img.parsed, img.config)
    index = json.loads(plan.static["index.json"])
    assert "annotations" not in index["manifests"][0]
    assert index["manifests"][0]["mediaType"] == DOCKER_MANIFEST


@pytest.mark.parametrize("platform, expected", [
    (Platform("linux", "arm64", "v8"), {"architecture": "arm64", "os": "linux", "variant": "v8"}),
    (Platform("linux", "amd64"), {"architecture": "amd64", "os": "linux"}),
])
def test_oci_layout_index_names_the_platform(platform, expected):
    img = Image(10, nlayers=1)
    index = json.loads(plan_oci_layout(img.parsed, img.config, platform=platform).static["index.json"])
    assert index["manifests"][0]["platform"] == expected


# --------------------------------------------------------------------------- validation


def test_config_bytes_must_match_their_digest():
    img = Image(11, nlayers=1)
    with pytest.raises(VerificationError):
        plan_docker_archive(img.parsed.config, img.config + b" ", img.parsed.layers, [])
    with pytest.raises(VerificationError):
        plan_oci_layout(img.parsed, img.config + b" ")
    with pytest.raises(VerificationError):
        plan_oci_layout(parse_manifest(img.manifest, sha256(b"other")), img.config)


@pytest.mark.parametrize("digest", [
    "sha256:../../../etc/passwd", "sha256:" + "A" * 64, "md5:" + "0" * 32, "sha256:" + "0" * 63, "",
    "sha512:" + "0" * 128,
])
def test_malformed_digests_never_become_paths(digest):
    # a plan holds only Descriptors, and none can be made of a digest unfit for a member name
    img = Image(12, nlayers=1)
    doc = json.loads(img.manifest)
    doc["layers"][0]["digest"] = digest
    with pytest.raises(ManifestError):
        parse_manifest(json.dumps(doc).encode(), img.manifest_digest)
    with pytest.raises(ManifestError):
        Descriptor(DOCKER_LAYER, digest, 1)


@pytest.mark.parametrize("size", [-1, True, "12", None])
def test_bad_sizes_are_refused(size):
    with pytest.raises(ManifestError):
        Descriptor(DOCKER_LAYER, "sha256:" + "0" * 64, size)


@pytest.mark.parametrize("tag", ["example.com/x", "example.com:5000/x", "x@sha256:" + "0" * 64, "x:", ":t"])
def test_repo_tags_need_a_tag(tag):
    img = Image(13, nlayers=1)
    with pytest.raises(UsageError):
        plan_docker_archive(img.parsed.config, img.config, img.parsed.layers, [tag])


def test_registry_port_is_not_a_tag():
    img = Image(14, nlayers=1)
    plan = plan_docker_archive(img.parsed.config, img.config, img.parsed.layers, ["localhost:5000/a/b:v1"])
    assert json.loads(plan.static["repositories"]) == {"localhost:5000/a/b": {"v1": img.layers[0]["digest"][7:]}}


# --------------------------------------------------------------------------- TarLayout


def build_tar(path, members):
    """members: list of (name, bytes, in_memory)"""
    layout = TarLayout([(n, d if mem else len(d)) for n, d, mem in members])
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        layout.write_skeleton(fd)
        for n, d, mem in reversed(members):
            if not mem:
                s = layout.region_sink(fd, n)
                s.write(d)
                s.verify_complete()
    finally:
        os.close(fd)
    return layout


def test_long_and_unicode_names_round_trip(tmp_path):
    long = "blobs/" + "/".join(["d" * 60] * 3) + "/" + "f" * 120  # > 255 bytes, no ustar prefix split possible
    members = [
        (long, b"long name data", False),
        ("x" * 100, b"exactly 100", True),
        ("y" * 101, b"", False),
        ("ünïcödé/ファイル", b"utf-8 name", True),
        ("plain", os.urandom(5000), False),
    ]
    out = tmp_path / "t.tar"
    layout = build_tar(out, members)
    assert layout.total_size == os.path.getsize(out)
    assert tar_contents(out) == {n: d for n, d, _ in members}
    if GNUTAR:
        dest = tmp_path / "x"
        dest.mkdir()
        run(GNUTAR, "-xf", str(out), "-C", str(dest))
        for n, d, _ in members:
            assert (dest / n).read_bytes() == d


def test_header_is_fixed_bytes():
    # Pin the format: changing any header byte changes every Nix hash of a docker-archive.
    h = tar_header("manifest.json", 347)
    assert len(h) == BLOCK
    ti = tarfile.TarInfo.frombuf(h, "utf-8", "strict")
    assert (ti.name, ti.size, ti.mode, ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname, ti.type) == (
        "manifest.json", 347, 0o644, 0, 0, 0, "", "", tarfile.REGTYPE)
    assert h[257:265] == b"ustar\x0000"
    assert hashlib.sha256(h).hexdigest() == "422f6cf58287d72e8c5f73bde7a8b48a8f075b4ec8706020b2b2478b847c6e69"
    long = tar_header("a" * 150, 8**11 + 5)
    assert len(long) == 3 * BLOCK and long[156:157] == b"x"
    assert hashlib.sha256(long).hexdigest() == "88a84c4666d7c63eaaeaf7674056456a324677240f7d0dfc825affabf90eb090"


def test_huge_member_gets_a_pax_size(tmp_path):
    size = 8**11 + 5  # does not fit the 11 octal digits of ustar
    out = tmp_path / "huge.tar"
    layout = TarLayout([("a", b"first"), ("huge.bin", size), ("z", b"last")])
    fd = os.open(out, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        layout.write_skeleton(fd)  # sparse: nothing of the huge region is written
        s = layout.region_sink(fd, "huge.bin")
        s.write(b"tail")  # just the first bytes
    finally:
        os.close(fd)
    with tarfile.open(out) as tf:
        ms = tf.getmembers()
        assert [(m.name, m.size) for m in ms] == [("a", 5), ("huge.bin", size), ("z", 4)]
        assert tf.extractfile(ms[2]).read() == b"last"
        assert ms[1].offset_data == layout.data_offset("huge.bin")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(
    st.tuples(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/"), min_size=1, max_size=160)
        .filter(lambda s: s not in (".", "..")),
        st.binary(max_size=1500),
        st.booleans(),
    ),
    max_size=8, unique_by=lambda m: m[0]))
def test_tar_layout_property(tmp_path, members):
    out = tmp_path / "p.tar"
    layout = build_tar(out, members)
    assert os.path.getsize(out) == layout.total_size
    with tarfile.open(out, encoding="utf-8") as tf:
        got = [(m.name, tf.extractfile(m).read(), m.offset_data) for m in tf.getmembers()]
    assert [(n, d) for n, d, _ in got] == [(n, d) for n, d, _ in members]
    assert [o for _, _, o in got] == [layout.data_offset(n) for n, _, _ in members]


def test_duplicate_member_names_are_refused():
    with pytest.raises(ValueError):
        TarLayout([("a", 1), ("a", b"x")])


def test_plan_entries_are_ordered_and_split():
    img = Image(15, nlayers=2)
    plan = plan_docker_archive(img.parsed.config, img.config, img.parsed.layers, ["a:b"])
    assert isinstance(plan, ArchivePlan)
    assert set(plan.static) == {"manifest.json", "repositories", img.config_digest[7:] + ".json"}
    assert {r.digest for r in plan.blobs.values()} == set(img.blobs)
    assert plan.blob_names == {d: d[7:] + ".tar" for d in img.blobs}
