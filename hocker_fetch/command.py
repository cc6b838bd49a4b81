"""What every entry point shares: the common options, client construction, byte output, errors and exit codes.

Heavy modules (requests) are imported only after the arguments parse, so `--help` and usage errors are
instant: a Nix build starts one process per blob.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from typing import TYPE_CHECKING, Callable, NoReturn, Optional

from .errors import HockerError, UsageError, one_line

if TYPE_CHECKING:
    from .client import RegistryClient
    from .manifest import Platform
    from .mirrors import MirrorConfig
    from .reference import Reference
    from .transport import ClientOptions

EPILOG = """\
Image forms: `IMAGE [TAG]` with a docker reference (debian:bookworm, ghcr.io/o/i:t, host:5000/a/b@sha256:...),
or hocker's form `--registry URI REPOSITORY TAG` (e.g. --registry http://127.0.0.1:5000 library/debian jessie).

Credentials, strongest first: --token; --username/--password (or --password-stdin); --credentials-file
(BEARER_TOKEN= or USERNAME=/PASSWORD=, or DOCKER_TOKEN= or DOCKER_USER=/DOCKER_PASS=); the environment
(DOCKER_TOKEN, or DOCKER_USER + DOCKER_PASS); the docker/podman config ($REGISTRY_AUTH_FILE,
$DOCKER_CONFIG/config.json, ~/.docker/config.json, with credsStore/credHelpers). None: anonymous.

Mirrors: registries.conf ($CONTAINERS_REGISTRIES_CONF, else ~/.config/containers/ or /etc/containers/, plus
registries.conf.d) and --mirror; every byte is verified, and a failing mirror is skipped for the registry.

Exit codes: 0 ok, 2 usage, 3 authentication, 4 not found, 5 verification failed, 6 registry/network
failure (a rate limit too), 7 unusable manifest, 8 refused by the signature policy."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(UsageError.exit_code, f"{self.prog}: {message}\n")


class _Version(argparse.Action):
    """`--version`: `<prog> <version>` on stdout. The version is looked up only when asked (it may read
    setup.cfg or the installed metadata), so every other run starts as fast as before."""

    def __init__(self, option_strings: "list[str]", dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str = "print the version and exit") -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: Optional[str] = None) -> None:
        from . import __version__

        print(f"{parser.prog} {__version__}")
        parser.exit(0)


def make_parser(prog: str, description: str, *, tag_help: str, multi_platform: bool = False,
                signatures: bool = False) -> argparse.ArgumentParser:
    epilog = EPILOG
    if signatures:  # (not imported by hocker-layer, which the Nix builders start once per blob)
        from .signatures import POLICY_HELP

        epilog += "\n\n" + POLICY_HELP
    p = new_parser(prog, description, epilog)
    p.add_argument("image", metavar="IMAGE", help="repository path (with --registry) or a docker image reference")
    p.add_argument("tag", metavar="TAG", nargs="?", help=tag_help)
    g = p.add_argument_group("registry")
    g.add_argument("--registry", metavar="URI",
                   help="registry URI, e.g. https://registry-1.docker.io/v2/ or http://127.0.0.1:5000 (hocker form); "
                        "a path prefix is kept: https://HOST/artifactory/api/docker/KEY/v2/")
    if multi_platform:
        add_platforms_option(g)
    else:
        g.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                       help="platform to pick from a multi-arch index (default: this host's linux platform)")
    add_connection_options(g)
    add_auth_options(p)
    if signatures:
        from .signatures import add_policy_options

        add_policy_options(p)
    add_quiet_option(p)
    return p


def new_parser(prog: str, description: str, epilog: str = EPILOG) -> argparse.ArgumentParser:
    """An argument parser whose errors are `<prog>: <message>` with the usage exit code (2)."""
    p = _Parser(prog=prog, description=description, epilog=epilog,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=_Version)
    return p


def add_platforms_option(g: "argparse._ActionsContainer") -> None:
    """The repeatable --platform of the tools that pin several platforms (docker2nix, hocker-lock add)."""
    g.add_argument("--platform", action="append", metavar="OS/ARCH[/VARIANT]",
                   help="platform to pin from a multi-arch index; repeat it to cover several Nix systems "
                        "(the expression then picks the one being built), or 'all' for every platform in "
                        "the index (default: this host's linux platform)")


def add_connection_options(g: "argparse._ActionsContainer") -> None:
    """TLS trust, timeouts and retries: how every tool reaches a registry."""
    g.add_argument("--insecure", action="store_true",
                   help="allow plain HTTP (also for credentials) and TLS without certificate verification")
    g.add_argument("--ca-file", metavar="PATH", help="trust this CA bundle (PEM) for the registry's TLS")
    g.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="fail a connection that sends nothing for this long (default 60)")
    g.add_argument("--retries", type=int, default=5, metavar="N",
                   help="retries on connection errors, 5xx and 429, with exponential backoff (default 5)")
    g.add_argument("--mirror", action="append", default=[], metavar="HOST[:PORT][/PATH]",
                   help="fetch by-digest content (blobs, pinned manifests) from this mirror first, the registry "
                        "last; repeatable, tried in order before registries.conf's mirrors (see docs/mirrors.md)")
    g.add_argument("--no-mirrors", action="store_true",
                   help="fetch from the registry only: do not read registries.conf (cannot be combined with --mirror)")


def add_auth_options(p: argparse.ArgumentParser) -> None:
    a = p.add_argument_group("authentication")
    a.add_argument("-u", "--username", help="user name for Basic auth or the token server")
    a.add_argument("-p", "--password", help="password (prefer --password-stdin, -f or DOCKER_PASS: argv is visible)")
    a.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input (all of it, less one trailing newline)")
    a.add_argument("-t", "--token", help="a ready Bearer token")
    a.add_argument("-f", "--credentials-file", metavar="PATH",
                   help="file with BEARER_TOKEN= or USERNAME=/PASSWORD= (or DOCKER_TOKEN= / DOCKER_USER=/DOCKER_PASS=)")


def add_quiet_option(p: argparse.ArgumentParser, verbose: bool = True) -> None:
    """-q, and -v for the commands that talk to registries."""
    o = p.add_argument_group("output")
    o.add_argument("-q", "--quiet", action="store_true",
                   help="no progress or retry messages on stderr (a skipped mirror is still reported)")
    if verbose:
        o.add_argument("-v", "--verbose", action="store_true",
                       help="say on stderr which host served each manifest and blob (a mirror or the "
                            "origin) and how long it took")


def add_out_option(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("-o", "--out", metavar="PATH", required=required,
                   help="write here atomically (never a partial file)" + ("" if required else "; default stdout"))


def say(prog: str, quiet: bool) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not quiet:
            print(f"{prog}: {one_line(message)}", file=sys.stderr, flush=True)
    return log


def image_reference(args: argparse.Namespace) -> "Reference":
    from .reference import resolve_reference

    return resolve_reference(args.image, args.tag, args.registry)


def chosen_platform(args: argparse.Namespace) -> "Platform":
    from .manifest import Platform, host_platform

    return Platform.parse(args.platform) if args.platform else host_platform()


def make_client(args: argparse.Namespace, ref: "Reference", prog: str, pool: int = 8) -> "RegistryClient":
    from .auth import resolve_credentials
    from .client import RegistryClient
    from .mirrors import origin_of

    password = read_password(args)
    options = client_options(args, pool)
    mirrors = mirror_config(args)
    origin = origin_of(mirrors, ref.registry, ref.repository)  # registries.conf may move it, or block it
    if origin.insecure:
        options = dataclasses.replace(options, insecure=True)
    creds = resolve_credentials(username=args.username, password=password, token=args.token,
                    credentials_file=args.credentials_file, registry_host=origin.host, env=os.environ)
    return RegistryClient(ref, creds, options, log=say(prog, args.quiet), mirrors=mirrors,
                          warn=say(prog, False),  # a skipped mirror is reported even with -q
                          trace=say(prog, False) if getattr(args, "verbose", False) else None)


def read_password(args: argparse.Namespace) -> Optional[str]:
    """--password, or with --password-stdin all of standard input less one trailing newline (read once per run).

    All of it, as docker and skopeo read it: `cat key.json | ... -u _json_key --password-stdin` (a GAR service
    account key) is a password of many lines.
    """
    password: Optional[str] = args.password
    if args.password_stdin:
        if password is not None:
            raise UsageError("give either --password or --password-stdin")
        password = strip_newline(sys.stdin.read())
    return password


def strip_newline(text: str) -> str:
    """`text` less one trailing "\n", then one "\r" (docker login's rule)."""
    text = text[:-1] if text.endswith("\n") else text
    return text[:-1] if text.endswith("\r") else text


def client_options(args: argparse.Namespace, pool: int = 8) -> "ClientOptions":
    """The connection options (add_connection_options), checked."""
    from .transport import ClientOptions

    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    if args.retries < 0:
        raise UsageError("--retries must not be negative")
    return ClientOptions(insecure=args.insecure, ca_file=args.ca_file, timeout=args.timeout,
                         retries=args.retries, pool_size=pool)


def mirror_config(args: argparse.Namespace) -> "Optional[MirrorConfig]":
    """registries.conf plus --mirror (tried first); None with --no-mirrors."""
    from .mirrors import load_config, parse_mirror_flag

    flags = getattr(args, "mirror", None) or []  # a parser without the mirror options: registries.conf only
    if getattr(args, "no_mirrors", False):
        if flags:
            raise UsageError("give either --mirror or --no-mirrors")
        return None
    return load_config(os.environ, [parse_mirror_flag(m, args.insecure) for m in flags])


def emit_bytes(data: bytes, out: Optional[str]) -> None:
    """Bytes to stdout exactly, or atomically to --out (then its path on stdout, as hocker did)."""
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    from .atomic import AtomicFile

    with AtomicFile(out) as f:
        f.write(data)
        f.commit()
    print(out)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_command(prog: str, body: Callable[[], None]) -> int:
    """Every failure becomes one line `<prog>: <message>` and a distinct exit code; never a traceback.

    SIGTERM is turned into KeyboardInterrupt so a killed run still removes its temporary files.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        body()
    except HockerError as exc:
        print(f"{prog}: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        # outputs were discarded on the way here; download threads still blocked in a read are daemons,
        # which the interpreter does not wait for
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as exc:
        print(f"{prog}: {exc.strerror or exc.__class__.__name__}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1
    return 0
