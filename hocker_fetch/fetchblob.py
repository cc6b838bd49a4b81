"""hocker-layer, and the fixed-output builder nix/default.nix runs per blob: `python -m hocker_fetch.fetchblob`.

A cold `nix-build` starts one Python process per layer, so this entry point imports only what fetching one
blob needs: the shared option parser (command.py, so every tool takes the same options), the reference, the
credentials and the registry client; nothing of platforms, archives, templates, ctypes or the other tools.
The bytes still go through the one RegistryClient/Transport (auth challenges, retries, TLS, redirects) and are
verified against the digest while they stream; the output appears only complete (atomic.py).

Run as the builder (`python -m`), it also keeps requests' encoding guesser out and the garbage collector off
while it imports (lean_process): 0.131 -> 0.104 s of CPU per small blob (issue 19, bench case 12).
"""

from __future__ import annotations

import gc
import sys
from typing import Optional, Sequence

from .command import add_out_option, image_reference, make_client, make_parser, run_command

PROG = "hocker-layer"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = make_parser(PROG, "Download one blob (a layer, still compressed) by digest, verified while it streams.",
                    tag_help="ignored (hocker compatibility: Nix passes a tag)")
    p.add_argument("-l", "--layer", required=True, metavar="DIGEST", help="sha256:HEX or bare HEX")
    p.add_argument("--size", type=int, metavar="BYTES", help="expected size, checked as well (optional)")
    p.add_argument("--foreign", action="store_true",
                   help="the blob is a foreign (non-distributable) layer: say so if the registry does not serve it")
    add_out_option(p, required=True)
    args = p.parse_args(argv)

    def body() -> None:
        from .atomic import AtomicFile
        from .digest import parse_digest
        from .errors import NotFoundError, foreign_not_served
        from .progress import Progress
        from .sinks import FileSink

        digest = parse_digest(args.layer)
        ref = image_reference(args)
        with make_client(args, ref, PROG) as client, AtomicFile(args.out) as f:
            # everything is imported: what exists now lives until exit, so the collector (off while the builder
            # imported, see lean_process) need never scan it; it runs again for what the download makes
            gc.freeze()
            gc.enable()
            progress = Progress(PROG, args.size, 1, enabled=not args.quiet and sys.stderr.isatty())
            try:
                client.fetch_blob(ref.repository, digest, args.size, FileSink(f.file), progress=progress.add)
            except NotFoundError as exc:
                raise foreign_not_served(exc) if args.foreign else exc from None
            progress.item_done()
            progress.close()
            f.commit()
        print(args.out)

    return run_command(PROG, body)


def lean_process() -> None:
    """What the builder process skips (a cold build starts one per blob): measured in bench case 12.

    - requests imports charset_normalizer (or chardet) only to guess the encoding of text bodies, ~0.008 s of
      CPU. The builder reads bytes and JSON, which requests decodes without it, so both are marked missing;
      requests then warns once at import (silenced here) and decodes `.text` as UTF-8, as it documents.
    - Importing creates ~100k objects that all live until exit; the collector would scan them again and again
      on the way (~0.007 s). It stays off until the imports are done (body() freezes them, then enables it).
    Only for `python -m hocker_fetch.fetchblob`, a process of its own: never in an importer's interpreter.
    """
    gc.disable()
    for name in ("charset_normalizer", "chardet"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None makes the import fail, by design
    import warnings

    warnings.filterwarnings("ignore", message="Unable to find acceptable character detection dependency")


if __name__ == "__main__":
    lean_process()
    sys.exit(main())
