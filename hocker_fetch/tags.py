"""A repository's tags: `GET /v2/<name>/tags/list`, page by page (`n`, `last` and the `Link: rel="next"` header
of the distribution spec, as `skopeo list-tags` and `crane ls` follow them), and the closest tags to a typo.

hocker-tags prints them; a tag that is not found gets its nearest neighbours in the one-line error when the
registry allows listing (a failure to list only drops the hint).
"""

from __future__ import annotations

import difflib
import json
import sys
from typing import TYPE_CHECKING, Optional, Sequence
from urllib.parse import urlsplit

from .errors import HockerError, NotFoundError, RegistryError, UsageError, one_line

if TYPE_CHECKING:
    from .client import RegistryClient

PROG = "hocker-tags"
#: pages followed at most: a registry whose `next` never ends must not keep us forever
MAX_PAGES = 10_000
#: pages read to find the closest tags for a not-found error (that run fails anyway: keep it cheap)
HINT_PAGES = 20
#: the largest page read (Docker Hub's pages of 100 tags are a few KiB)
MAX_PAGE_BYTES = 4 * 1024 * 1024


def list_tags(client: "RegistryClient", repository: str, page_size: Optional[int] = None,
              max_pages: int = MAX_PAGES) -> list[str]:
    """Every tag of `repository` at the origin, in the registry's order, following `Link: rel="next"`."""
    from .client import _raise_for_status, _read_bounded, _scope

    ep, repo = client.endpoints.origin_for(repository)
    path: Optional[str] = f"/v2/{repo}/tags/list" + (f"?n={page_size}" if page_size else "")
    what = f"tags of {repo}"
    tags: list[str] = []
    seen: set[str] = set()
    pages = 0
    while path is not None:
        pages += 1
        if pages > max_pages:
            if max_pages == MAX_PAGES:
                raise RegistryError(f"{what}: more than {MAX_PAGES} pages; giving up")
            break
        with client.request("GET", path, _scope(repo), what=what, endpoint=ep, stream=True) as resp:
            _raise_for_status(resp, what, ep.host)
            body = _read_bounded(resp, MAX_PAGE_BYTES, what)  # a hostile registry's endless page
            try:
                page = json.loads(body).get("tags") or []
            except (ValueError, AttributeError, RecursionError):
                raise RegistryError(f"{what}: {ep.host} sent no JSON tag list") from None
            path = _next_path(resp.links.get("next", {}).get("url"), path)
        if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
            raise RegistryError(f"{what}: {ep.host} sent a malformed tag list")
        new = [t for t in page if t not in seen]
        if page and not new:
            break  # the same page again: a registry that ignores `last`
        seen.update(new)
        tags += new
    return tags


def _next_path(link: Optional[str], current: str) -> Optional[str]:
    """The next page's path and query from a Link URL (relative, or absolute on the same host); None at the end."""
    if not link:
        return None
    parts = urlsplit(link)
    nxt = parts.path + (f"?{parts.query}" if parts.query else "")
    if not parts.path.startswith("/v2/") or nxt == current:
        return None
    return nxt


def closest(tag: str, tags: Sequence[str], n: int = 3) -> list[str]:
    """The tags most like `tag` (a typo, another version), best first."""
    return difflib.get_close_matches(tag, list(tags), n=n, cutoff=0.5)


def not_found_hint(client: "RegistryClient", repository: str, tag: str) -> str:
    """"; closest tags: ..." for a tag the registry does not have, or "" when it does not let us list them."""
    from .reference import TAG

    try:
        tags = [t for t in list_tags(client, repository, max_pages=HINT_PAGES) if TAG.fullmatch(t)]
    except NotFoundError:
        return f"; the repository {repository} itself does not exist there"
    except HockerError:
        return ""
    if not tags:
        return f"; {repository} has no tags"
    near = closest(tag, tags)
    if near:
        return f"; closest tags: {', '.join(near)}"
    return f"; it has {len(tags)}{'+' if len(tags) >= 100 * HINT_PAGES else ''} other tags (hocker-tags lists them)"


DESCRIPTION = """\
List the tags of a repository, every page of them (the registry's `n`/`last` pagination and its Link
headers), one per line in the registry's order; --json prints skopeo list-tags' {"Repository", "Tags"}."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .command import (
        EPILOG,
        add_auth_options,
        add_connection_options,
        add_quiet_option,
        image_reference,
        make_client,
        new_parser,
        run_command,
    )

    p = new_parser(PROG, DESCRIPTION, EPILOG.replace("`IMAGE [TAG]`", "`IMAGE`").replace(" TAG (e.g.", " (e.g.")
                   .replace(" library/debian jessie)", " library/debian)"))
    p.add_argument("image", metavar="IMAGE", help="a repository: docker form (ghcr.io/o/i, debian) or, with "
                                                  "--registry, its path (library/debian)")
    g = p.add_argument_group("registry")
    g.add_argument("--registry", metavar="URI", help="registry URI (hocker form), e.g. http://127.0.0.1:5000")
    add_connection_options(g)
    g.add_argument("-n", "--page-size", type=int, metavar="N",
                   help="tags asked for per request (the registry's `n`; default: the registry's own page size)")
    add_auth_options(p)
    add_quiet_option(p)
    p.add_argument("--json", action="store_true", help='print {"Repository": NAME, "Tags": [...]} as skopeo does')
    p.set_defaults(tag=None)  # tags are asked of the registry itself (registries.conf may move it), never a mirror
    args = p.parse_args(argv)

    def body() -> None:
        if args.page_size is not None and args.page_size < 1:
            raise UsageError("--page-size must be at least 1")
        ref = image_reference(args)
        if ":" in args.image.rsplit("/", 1)[-1] or ref.digest:
            raise UsageError(f"{args.image}: give the repository without a tag or digest ({PROG} lists its tags)")
        with make_client(args, ref, PROG) as client:
            tags = list_tags(client, ref.repository, args.page_size)
        if args.json:
            print(json.dumps({"Repository": ref.name, "Tags": tags}, indent=4))
        else:
            for t in tags:
                print(one_line(t))  # a registry's strings: no forged extra lines
        sys.stdout.flush()

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
