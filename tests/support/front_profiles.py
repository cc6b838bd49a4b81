"""What each registry front reproduces: one `Profile` per registry, with the documentation it follows cited.

Kept apart from the servers (fronts.py) so the list of registries and their documented behaviour reads in one
place; docs/registry-compat.md tabulates it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Profile:
    """One registry's documented pull behaviour (what a front reproduces); `source` cites where it is described."""

    name: str
    source: str
    auth: str = "bearer"                     # "bearer" (token realm) or "basic" (ECR)
    realm_host: str = "same"                 # "same" host as the registry, or "auth" (AUTH_IP)
    realm_path: str = "/token"
    service: str = "registry"
    challenge_scheme: str = "Bearer"         # as written in WWW-Authenticate ("bearer" for the lower-case quirk)
    anonymous: bool = True                   # public pulls get a token without credentials
    token_fields: tuple[str, ...] = ("token", "access_token")
    expires_in: Optional[int] = 300          # advertised and enforced lifetime of a token (None: not advertised, 60 s)
    refresh_tokens: bool = False             # ACR: POST grant_type=refresh_token (docker config `identitytoken`)
    blob_redirect: Optional[str] = None      # None, "cdn" (logs only) or "s3" (400 on an Authorization header)
    rate_limit_headers: bool = False         # Docker Hub's ratelimit-* headers on manifests
    head_status: Optional[int] = None        # Nexus/Artifactory: a manifest HEAD answered with this (405)
    digest_header: bool = True               # False: manifests come without Docker-Content-Digest
    prefix: str = ""                         # Artifactory's repository path: /artifactory/api/docker/<repo-key>
    users: tuple[str, ...] = ()              # documented user-name forms (passwords are made per test)


PROFILES: dict[str, Profile] = {p.name: p for p in [
    # Docker docs, "Docker Hub usage and limits" / "Registry token authentication" (auth.docker.io/token,
    # service registry.docker.io, anonymous pull tokens, ratelimit-limit/-remaining `N;w=21600`,
    # docker-ratelimit-source) and "Allowlist" (blobs from production.cloudflare.docker.com).
    Profile("dockerhub", "docs.docker.com: Docker Hub usage and limits; Registry token authentication; Allowlist",
            realm_host="auth", realm_path="/token", service="registry.docker.io", blob_redirect="cdn",
            rate_limit_headers=True, users=("hocker",)),
    # GitHub Docs, "Working with the Container registry" (ghcr.io/token, service ghcr.io, anonymous token for public
    # packages, `{"token": ...}` only) and "About GitHub Packages" allowlist (pkg-containers.githubusercontent.com).
    Profile("ghcr", "docs.github.com: Working with the Container registry; About GitHub Packages (allowlist)",
            realm_path="/token", service="ghcr.io", token_fields=("token",), blob_redirect="cdn",
            users=("octocat",)),
    # Red Hat Quay docs, "Quay.io API / Docker CLI" (realm https://quay.io/v2/auth, service quay.io; robot accounts
    # `org+robot`) and "Quay.io firewall: cdn.quay.io, cdn01-03.quay.io" for blob redirects.
    Profile("quay", "docs.quay.io: Robot accounts; Quay.io firewall configuration (CDN hosts)",
            realm_path="/v2/auth", service="quay.io", blob_redirect="cdn", users=("org+robot",)),
    # AWS docs, "Private registry authentication in Amazon ECR" (Basic, user AWS, a ~2.4 KB base64 password from
    # get-login-password, valid 12 h) and "Amazon ECR interface VPC endpoints" (layers come from S3,
    # prod-<region>-starport-layer-bucket); S3 refuses a presigned URL plus an Authorization header with
    # 400 InvalidArgument "Only one auth mechanism allowed" (see open-policy-agent/opa#6728).
    Profile("ecr", "docs.aws.amazon.com: Private registry authentication; ECR interface VPC endpoints (S3)",
            auth="basic", service="ecr.amazonaws.com", anonymous=False, blob_redirect="s3", users=("AWS",)),
    # Google Cloud docs, "Configure authentication to Artifact Registry for Docker": user `_json_key` with the
    # service account's JSON key (many lines) or `oauth2accesstoken` with an access token; realm
    # https://LOCATION-docker.pkg.dev/v2/token.
    Profile("gar", "cloud.google.com: Artifact Registry, Configure authentication for Docker (_json_key, "
            "oauth2accesstoken)", realm_path="/v2/token", service="us-docker.pkg.dev", anonymous=False,
            users=("_json_key", "oauth2accesstoken")),
    # Microsoft Learn, "Azure Container Registry authentication" and the ACR "AAD-OAuth" token flow: docker login
    # stores an `identitytoken` (user 00000000-0000-0000-0000-000000000000), exchanged at POST /oauth2/token with
    # grant_type=refresh_token for an `access_token`; realm https://<name>.azurecr.io/oauth2/token; blobs come
    # from the registry's data endpoint / *.blob.core.windows.net ("Configure rules to access an ACR behind a
    # firewall").
    Profile("acr", "learn.microsoft.com: ACR authentication; ACR AAD-OAuth flow (oauth2/token); ACR firewall rules",
            realm_path="/oauth2/token", service="hocker.azurecr.io", anonymous=False, token_fields=("access_token",),
            refresh_tokens=True, blob_redirect="cdn", users=("00000000-0000-0000-0000-000000000000",)),
    # Harbor docs, "Create Robot Accounts" (`robot$<project>+<name>`) and its token service at /service/token,
    # service harbor-registry; public projects pull anonymously.
    Profile("harbor", "goharbor.io: Create Robot Accounts; Harbor token service /service/token",
            realm_path="/service/token", service="harbor-registry", users=("robot$library+ci",)),
    # GitLab docs, "GitLab container registry administration" (the registry on its own host, token realm
    # https://gitlab.example.com/jwt/auth, service container_registry; object storage redirects blob downloads
    # to the bucket unless `redirect: disable`) and "Deploy tokens" (`gitlab+deploy-token-N`).
    Profile("gitlab", "docs.gitlab.com: Container registry administration (jwt/auth, object storage redirect); "
            "Deploy tokens", realm_host="auth", realm_path="/jwt/auth", service="container_registry",
            blob_redirect="s3", users=("gitlab+deploy-token-1",)),
    # Sonatype Nexus Repository docs, "Docker Authentication" (Docker Bearer Token Realm at /v2/token); some
    # versions answer a manifest HEAD with 405 (issue 17, defect 2; distribution's client and crane then GET).
    Profile("nexus", "help.sonatype.com: Docker Authentication (Docker Bearer Token Realm); issue 17 defect 2",
            realm_path="/v2/token", service="nexus", head_status=405, users=("deployment",)),
    # JFrog docs, "Docker Repository URL Formats" (repository path, subdomain and port methods) and "How to
    # troubleshoot Docker problems" (GET /artifactory/api/docker/<repo-key>/v2/token); HEAD 405 as above.
    Profile("artifactory", "jfrog.com: Docker Repository URL Formats; How to troubleshoot Docker problems "
            "(api/docker/<repo-key>/v2/token); issue 17 defect 2", realm_path="/v2/token", service="artifactory",
            head_status=405, prefix="/artifactory/api/docker/docker-local", users=("admin",)),
    # The distribution token spec ("Token Authentication Specification", docker/distribution docs/spec/auth/
    # token.md): `access_token` is the OAuth 2.0 name and clients must accept it alone; `expires_in` defaults
    # to 60 s when absent.
    Profile("access-token-only", "distribution docs/spec/auth/token.md: token / access_token, expires_in",
            token_fields=("access_token",), expires_in=None, users=("user",)),
    # RFC 7235 section 2.1: the auth-scheme is case-insensitive; some token servers write `bearer`.
    Profile("lowercase-bearer", "RFC 7235 section 2.1 (case-insensitive auth-scheme)", challenge_scheme="bearer",
            users=("user",)),
    # The token spec's expires_in, with a short lifetime (issue 17: tokens that expire in 3 s) enforced here.
    Profile("short-lived", "distribution docs/spec/auth/token.md (expires_in); issue 17 (3 s tokens)",
            expires_in=3, users=("user",)),
    # OCI distribution-spec, "Pulling manifests": Docker-Content-Digest is a SHOULD; a registry may leave it out
    # (issue 17, defect 3).
    Profile("no-digest", "OCI distribution-spec: Pulling manifests (Docker-Content-Digest is optional); "
            "issue 17 defect 3", digest_header=False, users=("user",)),
]}

#: the fronts whose manifest HEAD is refused (defect 2: the HEAD-using tools fail until wt-q17 is merged)
HEAD_REFUSED = frozenset(n for n, p in PROFILES.items() if p.head_status is not None)
