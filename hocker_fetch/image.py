"""hocker-image's work: one image to a docker-archive, an OCI layout or an oci-archive.

The archive's layout is planned from the manifest before any layer is fetched, so layers download in
parallel straight to their final place (no second copy) and are verified on the way; the output appears at
its path only once every blob checked out.
"""

from __future__ import annotations

import threading
from typing import Mapping, Optional, Sequence

from .archive import plan_docker_archive, plan_oci_layout, write_dir, write_tar
from .atomic import AtomicDir, AtomicFile
from .client import RegistryClient, Resolved
from .errors import NotFoundError, foreign_not_served
from .manifest import Descriptor, ImageIndex, check_is_image
from .pipeline import run_parallel
from .progress import Progress
from .reference import Reference
from .sinks import BlobSink

FORMATS = ("docker-archive", "oci", "oci-archive")


def default_repo_tags(ref: Reference) -> list[str]:
    """`debian:bookworm` for Docker Hub official images, `host:port/path:tag` elsewhere; none for a bare digest."""
    return [f"{ref.name}:{ref.tag}"] if ref.tag else []


def write_image(client: RegistryClient, ref: Reference, resolved: Resolved, out: str, *, fmt: str = "docker-archive",
                jobs: int = 4, repo_tags: Optional[Sequence[str]] = None, progress: Optional[Progress] = None) -> None:
    manifest = resolved.manifest
    # an artifact or an encrypted image would make an archive docker/podman/skopeo reject: refuse it first
    check_is_image(manifest, f"{ref} manifest {manifest.digest}" if isinstance(resolved.top, ImageIndex) else str(ref))
    config = client.get_blob_bytes(ref.repository, manifest.config)
    tags = list(repo_tags) if repo_tags else default_repo_tags(ref)
    if fmt == "docker-archive":
        plan = plan_docker_archive(manifest.config, config, manifest.layers, tags)
    else:
        name = tags[0] if tags else ref.name
        plan = plan_oci_layout(manifest, config, ref_name=name.rsplit(":", 1)[-1] if tags else None,
                               image_name=name)
    foreign = {d.digest for d in manifest.layers if d.is_foreign}
    if fmt == "oci":
        with AtomicDir(out) as target:
            _download(client, ref.repository, write_dir(plan, target), plan.blobs, jobs, progress, foreign)
            target.commit()
    else:
        with AtomicFile(out) as target:
            _download(client, ref.repository, write_tar(plan, target), plan.blobs, jobs, progress, foreign)
            target.commit()


def _download(client: RegistryClient, repository: str, sinks: Mapping[str, BlobSink], blobs: Mapping[str, Descriptor],
              jobs: int, progress: Optional[Progress], foreign: set[str]) -> None:
    """Fetch every blob into its sink, `jobs` at a time; the first failure stops the others (Cancelled)."""
    sizes = {ref.digest: ref.size for ref in blobs.values()}
    stop = threading.Event()

    def one(digest: str) -> None:
        sink = sinks[digest]
        try:
            client.fetch_blob(repository, digest, sizes[digest], sink, cancel=stop,
                              progress=progress.add if progress else None)
        except NotFoundError as exc:
            if digest in foreign:
                raise foreign_not_served(exc) from None
            raise
        sink.verify_complete()
        if progress:
            progress.item_done()

    run_parallel(list(sinks), one, jobs, stop)
