"""docker2nix: pin an image for Nix in one command (one or two small manifest requests, no blob downloads)."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from .command import add_out_option, image_reference, make_client, make_parser, run_command
from .errors import ManifestError, UsageError

if TYPE_CHECKING:
    from .client import RegistryClient
    from .manifest import Platform

PROG = "docker2nix"

DESCRIPTION = """\
Print a Nix expression (or with --json a lock file) that fetches IMAGE with hocker-fetch's Nix functions.

The manifest is fetched from the registry, or read from --manifest PATH, or from standard input when it is a
pipe or a file (hocker's `hocker-manifest library/debian jessie | docker2nix library/debian jessie`). No blob is
downloaded: every Nix hash is the registry digest re-encoded."""


def _make_parser() -> argparse.ArgumentParser:
    p = make_parser(PROG, DESCRIPTION, tag_help="tag (default latest)", multi_platform=True, signatures=True)
    g = p.add_argument_group("docker2nix")
    g.add_argument("--manifest", metavar="PATH",
                   help="read the manifest from PATH ('-' for standard input) instead of fetching it")
    # --altImageName is hocker's flag (its field name); --altName is what hocker's README showed
    g.add_argument("--altImageName", "--alt-image-name", "--altName", dest="alt_image_name", metavar="NAME",
                   help="name the loaded image NAME[:TAG] (and the derivation NAME) instead of the repository's")
    g.add_argument("--hash-format", choices=("base32", "sri"), default="base32",
                   help="base32: hocker's `sha256 = \"...\"` (default); sri: `hash = \"sha256-...\"`")
    g.add_argument("--json", action="store_true",
                   help="print a JSON lock file (digests, sizes, media types, platforms, hashes) instead of Nix")
    g.add_argument("--prefetch", action="store_true",
                   help="also put the blobs the file's fetchers need into the Nix store (one process, one "
                        "nix-store call: nix-build then fetches nothing; see docs/prefetch.md)")
    g.add_argument("--all-platforms", action="store_true",
                   help="with --prefetch: every platform the file pins (default: this host's)")
    add_out_option(p, required=False)
    return p


def _stdin_manifest() -> Optional[bytes]:
    """The manifest piped into us, or None: a terminal, /dev/null, a socket or an empty pipe mean "fetch it"."""
    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, ValueError, OSError):
        return None
    if os.isatty(fd) or not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)):
        return None
    data = sys.stdin.buffer.read()
    return data if data.strip() else None


def _read_manifest(args: argparse.Namespace) -> Optional[bytes]:
    if args.manifest is None:
        if args.password_stdin:
            return None  # standard input carries the password
        return _stdin_manifest()
    if args.manifest == "-":
        if args.password_stdin:
            raise UsageError("--manifest - and --password-stdin both want standard input")
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(args.manifest, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise UsageError(f"--manifest {args.manifest}: {exc.strerror or exc.__class__.__name__}") from None
    if not data.strip():
        raise UsageError(f"--manifest {args.manifest}: empty")
    return data


def _platforms(args: argparse.Namespace) -> "Optional[list[Platform]]":
    """The requested platforms (None = every platform in the index), in the order given, without repeats."""
    from .manifest import Platform, host_platform

    values = args.platform or []
    if any(v.strip().lower() == "all" for v in values):
        if len(values) > 1:
            raise UsageError("--platform all cannot be combined with other --platform values")
        return None
    if not values:
        return [host_platform()]
    out: list[Platform] = []
    for v in values:
        plat = Platform.parse(v)
        if plat not in out:
            out.append(plat)
    return out


def generate(args: argparse.Namespace) -> str:
    """Resolve the image (fetching only manifests) and render the expression or the lock file."""
    from .digest import sha256_digest
    from .manifest import ImageIndex, check_is_image, parse_manifest
    from .nixgen import nix_system, pin_from_parts, registry_uri, render_json, render_nix
    from .platforms import resolve_platforms
    from .signatures import gate_from_args

    ref = image_reference(args)
    check = gate_from_args(args).for_image(ref, early=True)  # a broken policy fails before any network
    wanted = _platforms(args)
    given = _read_manifest(args)
    client = None
    notes: list[str] = []
    try:
        def get_client() -> "RegistryClient":
            nonlocal client
            if client is None:
                client = make_client(args, ref, PROG)
            return client

        if given is not None:
            digest = sha256_digest(given)
            if ref.digest and ref.digest != digest:
                raise ManifestError(f"the manifest given has digest {digest}, not the {ref.digest} named")
            top = parse_manifest(given, digest)
        else:
            top = get_client().get_parsed(ref.repository, ref.reference)

        index = top.descriptor if isinstance(top, ImageIndex) else None
        skipped: list[str] = []
        manifests = resolve_platforms(
            top, wanted, lambda entry: get_client().get_entry(ref.repository, entry),
            # an explicit --platform is checked against the config when no index states it (one small blob)
            fetch_config=(lambda m: get_client().get_blob_bytes(ref.repository, m.config)) if args.platform else None,
            accept=lambda p: nix_system(p) is not None, skipped=skipped)  # `all`: what Nix can build for
        if skipped:
            notes.append(f"note: --platform all skipped what has no Nix system: {', '.join(skipped)}")
        # an artifact or an encrypted image would pin a file whose build makes a broken image
        for m, _ in manifests:
            check_is_image(m, f"{ref} manifest {m.digest}" if index is not None else str(ref))
        foreign = [d for m, _ in manifests for d in m.layers if d.is_foreign]
        if foreign:  # (a client only then: a manifest given on stdin needs no network otherwise)
            get_client().check_foreign_served(ref, foreign)
        # the signatures live in the registry, even for a manifest given on stdin
        check.verify(get_client() if check.needs_registry else client, ref.repository, top.digest,
                     [m.digest for m, _ in manifests])
        base_url = client.base_url if client is not None else None
        pin = pin_from_parts(ref, registry_uri(ref, base_url), manifests, index, args.alt_image_name, notes)
        if args.prefetch:  # before the file is written: a failed prefetch leaves no output
            from .command import say
            from .prefetch import prefetch_pin, report

            result = prefetch_pin(pin, get_client(), all_platforms=args.all_platforms,
                                  log=say(PROG, args.quiet), warn=say(PROG, False))
            say(PROG, args.quiet)(report(result))
    finally:
        if client is not None:
            client.close()
    if args.json:
        return render_json(pin)
    return render_nix(pin, args.hash_format)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _make_parser().parse_args(argv)

    def body() -> None:
        text = generate(args)
        if args.out is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        from .atomic import AtomicFile

        with AtomicFile(args.out) as f:
            f.write(text.encode())
            f.commit()
        if not args.quiet and not args.json:
            print(f"{PROG}: wrote {args.out}; build it with hocker-fetch's overlay, e.g.\n"
                  f"  nix-build -E 'with import <nixpkgs> {{ overlays = [ (import <hocker-fetch/overlay.nix>) ]; }}; "
                  f"callPackage ./{os.path.basename(args.out)} {{ }}'\n"
                  "  ./result/compositeImage.sh | docker load        (the README shows the NixOS module)",
                  file=sys.stderr)

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
