"""hocker's four tools: hocker-manifest, hocker-config, hocker-layer and hocker-image (thin entry points;
hocker-layer's is fetchblob.py, which the Nix fixed-output builders run directly).

Each parses its command line (command.py), and hands the work to the registry client, image.py or atomic.py.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Optional, Sequence

from .command import add_out_option, chosen_platform, emit_bytes, image_reference, make_client, make_parser, run_command
from .errors import UsageError

if TYPE_CHECKING:
    from .client import RegistryClient
    from .reference import Reference


def manifest_main(argv: Optional[Sequence[str]] = None) -> int:
    prog = "hocker-manifest"
    p = make_parser(prog, "Print an image manifest exactly as the registry serves it.",
                tag_help="tag (default latest)", signatures=True)
    add_out_option(p, required=False)
    p.add_argument("--index", action="store_true",
                   help="for a multi-arch tag, print the index/manifest list itself instead of one platform's manifest")
    p.add_argument("--digest", action="store_true",
                   help="print only the digest the tag resolves to: the index's for a multi-arch tag (one HEAD "
                        "request, which Docker Hub does not rate-limit), or the platform manifest's with --platform")
    p.add_argument("--rate-limit", action="store_true",
                   help="print the registry's pull rate limit (its ratelimit-* headers on a HEAD of the manifest, "
                        "which Docker Hub does not count as a pull) and exit")
    args = p.parse_args(argv)

    def body() -> None:
        from .manifest import DOCKER_SCHEMA1, parse_manifest, schema1_error
        from .signatures import gate_from_args

        ref = image_reference(args)
        check = gate_from_args(args).for_image(ref, early=not args.rate_limit)  # before any network
        with make_client(args, ref, prog) as client:
            if args.rate_limit:
                print_rate_limit(client, ref)
                return
            if args.digest and (args.index or not args.platform):
                if ref.digest:
                    check.verify(client, ref.repository, ref.digest)
                    print(ref.digest)
                    return
                digest, content_type = client.manifest_digest(ref.repository, ref.reference)
                if content_type in DOCKER_SCHEMA1:
                    raise schema1_error(digest)  # refused here as in every other mode
                check.verify(client, ref.repository, digest)
                print(digest)
                return
            if args.index:
                raw, content_type, digest = client.get_manifest(ref.repository, ref.reference)
                parse_manifest(raw, digest, content_type)  # refuse schema1 / garbage even here
                check.verify(client, ref.repository, digest)
            else:
                resolved = client.resolve(ref, chosen_platform(args), explicit=args.platform is not None)
                raw, digest = resolved.manifest.raw, resolved.manifest.digest
                check.verify(client, ref.repository, resolved.top.digest, [digest])
            if args.digest:
                print(digest)
            else:
                emit_bytes(raw, args.out)

    return run_command(prog, body)


def print_rate_limit(client: "RegistryClient", ref: "Reference") -> None:
    """The ratelimit-* headers as sent, then what they mean; or that the registry reports none."""
    from .transport import describe_rate_limit

    headers = client.rate_limit(ref.repository, ref.reference)
    for name, value in headers.items():
        print(f"{name}: {value}")
    meaning = describe_rate_limit(headers)
    print(f"{client.host}: {meaning}" if meaning else f"{client.host} reports no rate limit (no ratelimit-* headers)")


def config_main(argv: Optional[Sequence[str]] = None) -> int:
    prog = "hocker-config"
    p = make_parser(prog, "Print an image's config JSON exactly as stored (its sha256 is the image ID).",
                tag_help="tag (default latest)", signatures=True)
    add_out_option(p, required=False)
    args = p.parse_args(argv)

    def body() -> None:
        from .signatures import gate_from_args

        ref = image_reference(args)
        check = gate_from_args(args).for_image(ref, early=True)
        with make_client(args, ref, prog) as client:
            resolved = client.resolve(ref, chosen_platform(args), explicit=args.platform is not None)
            check.verify(client, ref.repository, resolved.top.digest, [resolved.manifest.digest])
            emit_bytes(client.get_blob_bytes(ref.repository, resolved.manifest.config), args.out)

    return run_command(prog, body)


def layer_main(argv: Optional[Sequence[str]] = None) -> int:
    """hocker-layer lives in fetchblob.py, the lean entry point the Nix fixed-output builders run."""
    from .fetchblob import main

    return main(argv)


def image_main(argv: Optional[Sequence[str]] = None) -> int:
    prog = "hocker-image"
    p = make_parser(prog, "Write an image as a `docker load` archive (or an OCI layout), layers fetched in parallel.",
                tag_help="tag (default latest)", signatures=True)
    add_out_option(p, required=True)
    p.add_argument("--format", choices=("docker-archive", "oci", "oci-archive"), default="docker-archive",
                   help="docker-archive (docker/podman load; default), oci (an OCI image layout directory) "
                        "or oci-archive (that layout as a tar)")
    p.add_argument("--repo-tag", action="append", metavar="NAME:TAG",
                   help="name the loaded image (repeatable; default: the image's familiar name and tag)")
    p.add_argument("-j", "--jobs", type=int, default=4, metavar="N", help="parallel layer downloads (default 4)")
    args = p.parse_args(argv)

    def body() -> None:
        from .image import write_image
        from .progress import Progress
        from .signatures import gate_from_args

        if args.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        ref = image_reference(args)
        check = gate_from_args(args).for_image(ref, early=True)
        with make_client(args, ref, prog, pool=args.jobs) as client:
            resolved = client.resolve(ref, chosen_platform(args), explicit=args.platform is not None)
            check.verify(client, ref.repository, resolved.top.digest, [resolved.manifest.digest])
            layers = resolved.manifest.layers
            progress = Progress(prog, sum(d.size for d in layers), len(layers),
                                enabled=not args.quiet and sys.stderr.isatty())
            write_image(client, ref, resolved, args.out, fmt=args.format, jobs=args.jobs,
                        repo_tags=args.repo_tag, progress=progress)
            progress.close()
        print(args.out)

    return run_command(prog, body)


