"""hocker-lock: keep a fleet of pinned images current in one lock file (see lockfile.py for its format).

`add` records the platforms asked for (`--platform`, normalised; default this host's, written out so an
update on another machine resolves the same) or "all" (every platform the index lists that Nix builds for).
A single-platform image's config is always fetched: its system is the platform the config declares, which
must match an explicit --platform.

`update` and `check` are all-or-nothing: one entry that fails (tag deleted, access denied, network) fails
the run with that entry's exit code, and the file is left byte-identical. `check` exits 1 when an entry
moved, 0 when none did.

`--json` reports (one JSON object on stdout):

* update / check: `{"moved": [{"name", "reference", "tag", "old": {"digest", "created", "version"},
  "new": {...same}}], "unchanged": [names], "written": bool}`; `written` is false for check and when
  nothing moved. `created` and `version` are those of the entry's first Nix system (sorted by name).
* list: `{"images": [{"name", "reference", "host", "repository", "tag", "digest", "platforms",
  "systems": [Nix systems], "created", "version"}]}`.

Credentials are resolved per registry host (the docker/podman config names a login per registry). Generic
ones (-u/-p, --password-stdin, -t, -f, and DOCKER_USER/DOCKER_PASS or DOCKER_TOKEN in the environment)
would be sent to every registry of a run: they are accepted only when the selected entries all live on one
registry host, and refused with a usage error otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, Optional, Sequence

from .command import (
    EPILOG,
    add_auth_options,
    add_connection_options,
    add_platforms_option,
    add_quiet_option,
    client_options,
    mirror_config,
    new_parser,
    read_password,
    run_command,
    say,
)
from .errors import UsageError, one_line
from .lockfile import DEFAULT_FILE, Entries, Entry, check_name, default_name
from .signatures import POLICY_HELP, add_policy_options

if TYPE_CHECKING:
    from .lockresolve import Resolver, Target
    from .reference import Reference

PROG = "hocker-lock"

DESCRIPTION = """\
Pin many images in one lock file (default ./images.lock.json) and keep them current: `update` re-resolves
each entry's tag (one HEAD request per unchanged image) and rewrites only the entries that moved; `check`
says whether any did (exit 1) without writing. Nix builds the entries with importDockerLock.

  hocker-lock add [--name NAME] [--platform OS/ARCH[/VARIANT]]... [--platform all] IMAGE[:TAG]
  hocker-lock add --registry URI REPOSITORY TAG      hocker-lock add NAME IMAGE@DIGEST --tag TAG
  hocker-lock update [NAME...]      hocker-lock check [NAME...]
  hocker-lock remove NAME           hocker-lock list
  hocker-lock prefetch [NAME...]    (and --prefetch on add/update): the entries' blobs into the Nix store"""


MANY_REGISTRIES = """\
With entries on several registries, only per-registry logins (the docker/podman config) are used: -u/-p,
--password-stdin, -t, -f and DOCKER_USER/DOCKER_PASS/DOCKER_TOKEN would reach every registry and are refused.
`check` exits 1 when an entry moved."""


def _make_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, DESCRIPTION, EPILOG.split("\n\n", 1)[1] + "\n\n" + MANY_REGISTRIES + "\n\n" + POLICY_HELP)
    p.add_argument("--file", default=DEFAULT_FILE, metavar="PATH", help=f"the lock file (default ./{DEFAULT_FILE})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def file_option(sp: argparse.ArgumentParser) -> None:
        # also after the command (`hocker-lock check --file x`); SUPPRESS keeps the one given before it
        sp.add_argument("--file", default=argparse.SUPPRESS, metavar="PATH", help="the lock file")

    def network(sp: argparse.ArgumentParser) -> None:
        file_option(sp)
        g = sp.add_argument_group("registry")
        add_connection_options(g)
        g.add_argument("-j", "--jobs", type=int, default=8, metavar="N",
                       help="entries resolved at once (default 8)")
        add_auth_options(sp)
        add_policy_options(sp)
        add_quiet_option(sp)

    add = sub.add_parser("add", help="resolve IMAGE and add it (or replace the entry of the same name)")
    add.add_argument("image", metavar="IMAGE",
                     help="a docker image reference IMAGE[:TAG][@DIGEST]; with --registry a repository path "
                          "(hocker's form); or the entry's NAME, followed by IMAGE@DIGEST")
    add.add_argument("second", metavar="TAG | IMAGE@DIGEST", nargs="?",
                     help="the tag (`IMAGE TAG`, `--registry URI REPOSITORY TAG`), or after NAME the image pinned "
                          "by digest (`NAME IMAGE@DIGEST --tag TAG`)")
    add.add_argument("--name", help="the entry's name (default: the repository's last path component)")
    add.add_argument("--registry", metavar="URI",
                     help="hocker's form: --registry URI REPOSITORY [TAG] (--registry http://127.0.0.1:5000 a/b 1)")
    add.add_argument("--tag", metavar="TAG",
                     help="with IMAGE@DIGEST: the tag this pin follows; the digest is kept as given (an existing "
                          "pin adopted without moving it), and `update` moves it along TAG later")
    add_platforms_option(add)
    network(add)
    prefetch_options(add, flag=True)
    for cmd, text in (("update", "re-resolve entries' tags and rewrite the entries that moved"),
                      ("check", "re-resolve entries' tags; exit 1 if any moved, write nothing")):
        sp = sub.add_parser(cmd, help=text)
        sp.add_argument("names", metavar="NAME", nargs="*", help="entries to look at (default: all)")
        sp.add_argument("--json", action="store_true", help="print a machine-readable report")
        network(sp)
        if cmd == "update":
            prefetch_options(sp, flag=True)
    pre = sub.add_parser("prefetch", help="put the entries' blobs into the Nix store (one process, one nix-store "
                                          "call), so nix-build fetches nothing")
    pre.add_argument("names", metavar="NAME", nargs="*", help="entries to prefetch (default: all)")
    network(pre)
    prefetch_options(pre, flag=False)
    rm = sub.add_parser("remove", help="remove an entry")
    rm.add_argument("name", metavar="NAME")
    file_option(rm)
    add_quiet_option(rm, verbose=False)
    ls = sub.add_parser("list", help="show the entries")
    file_option(ls)
    ls.add_argument("--json", action="store_true", help="print a machine-readable list")
    return p


def prefetch_options(sp: argparse.ArgumentParser, flag: bool) -> None:
    """--prefetch (on add/update) and --all-platforms; see prefetch.py and docs/prefetch.md."""
    if flag:
        sp.add_argument("--prefetch", action="store_true",
                        help="then put the entries' blobs into the Nix store (as `hocker-lock prefetch`)")
    sp.add_argument("--all-platforms", action="store_true",
                    help="prefetch every Nix system an entry records (default: this host's)")


# -- helpers -------------------------------------------------------------------------------------------------

def _short(digest: Optional[str]) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "-"


def _source(entry: Entry) -> str:
    from .lockresolve import entry_reference

    return str(entry_reference(entry))


def _platforms(values: Optional[list[str]]) -> Any:
    """What `add` records: "all", or the normalised platforms in the order given (default: this host's)."""
    from .manifest import Platform, host_platform

    values = values or []
    if any(v.strip().lower() == "all" for v in values):
        if len(values) > 1:
            raise UsageError("--platform all cannot be combined with other --platform values")
        return "all"
    if not values:
        return [str(host_platform())]
    return list(dict.fromkeys(str(Platform.parse(v)) for v in values))


def _same_source(a: Entry, b: Entry) -> bool:
    return all(a.get(k) == b.get(k) for k in ("host", "repository", "tag", "platforms"))


def _resolver(args: argparse.Namespace, hosts: Sequence[str]) -> "Resolver":
    from .auth import resolve_credentials
    from .lockresolve import Resolver, check_credential_scope
    from .signatures import gate_from_args

    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    check_credential_scope(args, hosts, os.environ)
    options = client_options(args, pool=args.jobs)
    password = read_password(args) if hosts else None
    creds = {h: resolve_credentials(username=args.username, password=password, token=args.token,
                                    credentials_file=args.credentials_file, registry_host=h, env=os.environ)
             for h in dict.fromkeys(hosts)}
    return Resolver(creds, options, say(PROG, args.quiet), mirror_config(args), gate_from_args(args),
                    trace=say(PROG, False) if args.verbose else None)


def _select(entries: Entries, names: Sequence[str], path: str) -> list[str]:
    unknown = [n for n in dict.fromkeys(names) if n not in entries]
    if unknown:
        raise UsageError(f"{path} has no entry named {unknown[0]!r}" + (f" (it has: {', '.join(sorted(entries))})"
                                                                      if entries else " (it is empty)"))
    return sorted(set(names)) if names else sorted(entries)


# -- commands ------------------------------------------------------------------------------------------------

def cmd_add(args: argparse.Namespace) -> None:
    from . import lockfile
    from .lockresolve import Target

    given_name, ref = _add_reference(args)
    name = check_name(given_name) if given_name is not None else default_name(ref.repository)
    platforms = _platforms(args.platform)
    lockfile.read(args.file, missing_ok=True)  # a broken file fails before any network
    resolver = _resolver(args, [ref.registry])
    try:
        entry = resolver.resolve_all([Target(name, ref, platforms)], 1)[name]
    finally:
        resolver.close()  # (a later prefetch opens the clients again, with the credentials already read)
    assert entry is not None
    with lockfile.locked(args.file):
        entries = lockfile.read(args.file, missing_ok=True) or {}
        replaced = name in entries
        entries[name] = entry
        lockfile.write(args.file, entries)
    if replaced or not args.quiet:  # replacing an entry is never silent
        print(f"{PROG}: {'replaced' if replaced else 'added'} {name} ({ref} -> {_short(_digest(entry))}, "
              f"{', '.join(sorted(entry['systems']))}) in {args.file}", file=sys.stderr)
    if args.prefetch:
        _prefetch(args, {name: entry}, [name], resolver)


def _add_reference(args: argparse.Namespace) -> "tuple[Optional[str], Reference]":
    """`add`'s image forms: IMAGE[:TAG][@DIGEST] or `IMAGE TAG` (docker), `--registry URI REPOSITORY [TAG]`
    (hocker), `NAME IMAGE@DIGEST` (an existing pin); --tag names the tag a digest pin follows.

    A tag has no '/', ':' or '@', so a second argument with one of them is an image and the first its name."""
    from .reference import resolve_reference

    name, image, second = args.name, args.image, args.second
    if args.registry is None and second is not None and any(c in second for c in "/:@"):
        if name is not None:
            raise UsageError(f"the entry's name given twice: --name {name} and {image}")
        name, image, second = image, second, None
    ref = resolve_reference(image, second, args.registry)
    if args.tag is not None:
        if ref.digest is None:
            raise UsageError(f"--tag {args.tag} adopts a pin: give the image with its digest (IMAGE@sha256:...), "
                             f"or write {ref.name}:{args.tag} to resolve the tag now")
        if ref.tag is not None and ref.tag != args.tag:
            raise UsageError(f"tag given twice: {ref.tag!r} and {args.tag!r} as --tag")
        ref = resolve_reference(image, args.tag, args.registry)  # checks the tag's syntax
    return name, ref


def _digest(entry: Entry) -> str:
    from .lockresolve import top_digest

    return top_digest(entry)


def cmd_resolve(args: argparse.Namespace, write: bool) -> int:
    """update (write=True) and check: resolve the selected entries; report what moved."""
    from . import lockfile
    from .lockresolve import Target, entry_reference, summary

    entries = lockfile.read(args.file)
    assert entries is not None
    names = _select(entries, args.names, args.file)
    targets: list[Target] = [Target(n, entry_reference(entries[n]), entries[n]["platforms"], entries[n])
                             for n in names]
    resolver = _resolver(args, [t.ref.registry for t in targets])
    try:
        results = resolver.resolve_all(targets, args.jobs)
    finally:
        resolver.close()
    moved = {n: e for n, e in results.items() if e is not None}
    written = False
    notes: list[str] = []
    if write and moved:
        with lockfile.locked(args.file):
            current = lockfile.read(args.file)
            assert current is not None
            for n in sorted(moved):
                if n not in current:
                    notes.append(f"{n} was removed meanwhile; not re-added")
                elif not _same_source(current[n], entries[n]):
                    notes.append(f"{n} was changed meanwhile (another image or platforms); left as it is now")
                else:
                    current[n] = moved[n]
                    written = True
            if written:
                lockfile.write(args.file, current)
    report: list[dict[str, Any]] = [
        {"name": n, "reference": str(entry_reference(entries[n])), "tag": entries[n].get("tag"),
         "old": summary(entries[n]), "new": summary(moved[n])} for n in sorted(moved)]
    if args.json:
        print(json.dumps({"moved": report, "unchanged": [n for n in names if n not in moved], "written": written},
                         indent=2, sort_keys=True))
    else:
        for r in report:
            line = f"{r['name']} {r['tag'] or '(digest)'}: {_short(r['old']['digest'])} -> {_short(r['new']['digest'])}"
            for key in ("created", "version"):
                if r["old"][key] or r["new"][key]:
                    line += f", {key} {r['old'][key] or '-'} -> {r['new'][key] or '-'}"
            print(one_line(line))  # labels come from registries: no forged extra lines
    for note in notes:
        print(f"{PROG}: {note}", file=sys.stderr)
    if write and args.prefetch:
        current = lockfile.read(args.file)
        assert current is not None
        _prefetch(args, current, [n for n in names if n in current], resolver)
    if not args.quiet and not args.json:
        verb = "updated" if write else "would update"
        print(f"{PROG}: {len(names)} checked, {len(moved)} moved"
              + (f", {verb} {args.file}" if moved and (written or not write) else ""), file=sys.stderr)
    return 1 if (moved and not write) else 0


def cmd_prefetch(args: argparse.Namespace) -> None:
    from . import lockfile
    from .lockresolve import entry_reference

    entries = lockfile.read(args.file)
    assert entries is not None
    names = _select(entries, args.names, args.file)
    _prefetch(args, entries, names, _resolver(args, [entry_reference(entries[n]).registry for n in names]))


def _prefetch(args: argparse.Namespace, entries: Entries, names: Sequence[str], resolver: "Resolver") -> None:
    from .prefetch import prefetch_entries, report

    try:
        result = prefetch_entries(entries, names, resolver.client, all_platforms=args.all_platforms,
                                  jobs=args.jobs, log=say(PROG, args.quiet), warn=say(PROG, False))
    finally:
        resolver.close()
    say(PROG, args.quiet)(report(result))


def cmd_remove(args: argparse.Namespace) -> None:
    from . import lockfile

    with lockfile.locked(args.file):
        entries = lockfile.read(args.file)
        assert entries is not None
        _select(entries, [args.name], args.file)
        del entries[args.name]
        lockfile.write(args.file, entries)
    if not args.quiet:
        print(f"{PROG}: removed {args.name} from {args.file}", file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> None:
    from . import lockfile
    from .lockresolve import summary

    entries = lockfile.read(args.file)
    assert entries is not None
    rows = []
    for n in sorted(entries):
        e = entries[n]
        s = summary(e)
        rows.append({"name": n, "reference": _source(e), "host": e["host"], "repository": e["repository"],
                     "tag": e.get("tag"), "digest": s["digest"], "platforms": e["platforms"],
                     "systems": sorted(e["systems"]), "created": s["created"], "version": s["version"]})
    if args.json:
        print(json.dumps({"images": rows}, indent=2, sort_keys=True))
        return
    for r in rows:
        extra = "".join(f" {k} {r[k]}" for k in ("version", "created") if r[k])
        print(one_line(f"{r['name']}  {r['reference']}  {_short(r['digest'])}  {','.join(r['systems'])}{extra}"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _make_parser().parse_args(argv)
    status = [0]

    def body() -> None:
        if args.command == "add":
            cmd_add(args)
        elif args.command in ("update", "check"):
            status[0] = cmd_resolve(args, write=args.command == "update")
        elif args.command == "prefetch":
            cmd_prefetch(args)
        elif args.command == "remove":
            cmd_remove(args)
        else:
            cmd_list(args)

    return run_command(PROG, body) or status[0]


if __name__ == "__main__":
    sys.exit(main())
