"""What the link cases fetch from: the reference registry with TLS and token auth, and a token server with TLS,
both behind one emulated link (link.py), seeded with images A, B, C and D (issue 19).

Seeding goes through a plain-http registry process on the same storage, started and stopped first, so pushing
needs no tokens and costs no link time. Pulls are anonymous through the token flow (Docker Hub's for public
images): a 401 with a Bearer challenge, a token from the token server, the authorised request. TLS is end to end
(the link only delays and throttles bytes), so every handshake pays its round trips.
"""
from __future__ import annotations

import ssl
import sys
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .harness import MiB, log
from .link import Link
from .seed import TESTS, Seeder

if TYPE_CHECKING:
    from support.pki import Pki
    from support.registry import RegistryServer
    from support.tokenserver import TokenServer

KiB = 1 << 10
# image key -> (repository, tag, layer sizes); D is B with its top layer replaced (another seed, same size)
B_SIZES = [28 * MiB, 12 * MiB, 40 * MiB, 6 * MiB, 3 * MiB, 1 * MiB, 512 * KiB, 100 * KiB]


@dataclass(frozen=True)
class LinkImage:
    key: str
    repo: str
    tag: str
    seeds: list[str]
    sizes: list[int]


def link_images(quick: bool) -> list[LinkImage]:
    """A (1 x 30 MiB), B (8 layers, 95 MB), C (40 x 256 KiB), D (B, top layer replaced); --quick: a tenth of the
    bytes and 10 small layers, for a smoke run."""
    scale = 10 if quick else 1
    b_seeds = [f"link-b-{i}" for i in range(len(B_SIZES))]
    b_sizes = [max(s // scale, 4 * KiB) for s in B_SIZES]
    n_small = 10 if quick else 40
    return [
        LinkImage("A", "link/a", "a", ["link-a-0"], [30 * MiB // scale]),
        LinkImage("B", "link/b", "b", b_seeds, b_sizes),
        LinkImage("C", "link/c", "c", [f"link-c-{i}" for i in range(n_small)], [256 * KiB] * n_small),
        LinkImage("D", "link/b", "d", b_seeds[:-1] + ["link-b-top-changed"], b_sizes),
    ]


def _support() -> None:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))


class LinkSite:
    """Start with start(), stop with stop(): the link, the registry process and the token server's thread."""

    def __init__(self, root: Path, quick: bool) -> None:
        self.root = root
        self.quick = quick
        self.link = Link()
        self.registry: RegistryServer | None = None
        self.pki: Pki | None = None
        self.images: dict[str, dict[str, Any]] = {}
        self.registry_port = 0
        self.token_port = 0

    @property
    def host(self) -> str:
        """The registry as the clients see it: through the link."""
        return f"127.0.0.1:{self.registry_port}"

    @property
    def ca_file(self) -> str:
        assert self.pki is not None
        return str(self.pki.ca_cert)

    @property
    def cert_dir(self) -> str:
        assert self.registry is not None and self.registry.cert_dir is not None
        return self.registry.cert_dir

    @property
    def realm(self) -> str:
        return f"https://127.0.0.1:{self.token_port}/token"

    @property
    def service(self) -> str:
        assert self.registry is not None and self.registry.token_server is not None
        return self.registry.token_server.service

    def start(self) -> LinkSite:
        _support()
        from support.pki import make_pki
        from support.registry import RegistryServer

        self.pki = make_pki(self.root / "pki")
        seeding = RegistryServer(self.root / "registry", "plain").start()
        try:
            seeder = Seeder(seeding, self.root)
            for img in link_images(self.quick):
                self.images[img.key] = seeder.image(img.repo, img.tag, img.seeds, img.sizes)
        finally:
            seeding.stop()
        self.link.start()
        token = tls_token_server(self.pki)
        self.token_port = self.link.forward("127.0.0.1", token.port)
        token.public_realm = self.realm  # type: ignore[attr-defined]
        self.registry = tls_token_registry(self.root / "registry", self.pki, token).start()
        self.registry_port = self.link.forward("127.0.0.1", self.registry.port)
        log(f"link: registry https://{self.host} and token server {self.realm} behind "
            f"{self.link.delay * 1000:.0f} ms each way, {self.link.rate_bits / 1e6:.0f} Mbit/s shared")
        return self

    def stop(self) -> None:
        self.link.stop()
        if self.registry is not None:
            self.registry.stop()  # and its token server


def tls_token_server(pki: Pki) -> TokenServer:
    """tests/support's token server, served over TLS (the test CA's server certificate), with the realm the
    registry advertises set to its address through the link (`public_realm`)."""
    from support.tokenserver import TokenServer

    class TlsTokenServer(TokenServer):
        public_realm = ""

        @property
        def realm(self) -> str:
            return self.public_realm or super().realm

        def start(self) -> TlsTokenServer:
            server = self

            class Handler(BaseHTTPRequestHandler):
                def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                    server._handle(self)

                def log_message(self, format: str, *args: object) -> None:
                    pass

            httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            httpd.daemon_threads = True
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
            # the handshake happens in each request's thread, not in the accept loop (it waits for the link)
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
            self._start_serving(httpd, "link-token-server")
            return self

    return TlsTokenServer(pki.token_key, pki.token_cert_der_b64, users={}).start()


def tls_token_registry(root: Path, pki: Pki, token: TokenServer) -> RegistryServer:
    """The reference registry in token mode with TLS added (tests/support runs token mode over plain http)."""
    from support.registry import RegistryServer

    class TlsTokenRegistry(RegistryServer):
        def _write_files(self) -> None:
            super()._write_files()
            nosniff = "    X-Content-Type-Options: [nosniff]\n"
            tls = f"  tls:\n    certificate: {pki.server_cert}\n    key: {pki.server_key}\n"
            self.config_file.write_text(self.config_file.read_text().replace(nosniff, nosniff + tls))

    reg = TlsTokenRegistry(root, "token", pki)
    reg.token_server = token
    reg.scheme = "https"
    reg.ca_file = str(pki.ca_cert)
    return reg
