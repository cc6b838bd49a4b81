# hocker-fetch's Nix functions, on builtins.derivation: nothing from nixpkgs is needed but the hocker package
# (anything with hocker-fetch's console scripts under bin/: the overlay's package, or a virtualenv in tests).
#
#   fetchDockerConfig   the image config JSON, one flat fixed-output derivation
#   fetchDockerLayer    one compressed layer blob, as served (store name from the digest: shared by images)
#   fetchDockerManifest the pinned image manifest, exactly as served (for the OCI layout)
#   fetchdocker         $out/compositeImage.sh (streams a `docker load` archive; hocker-compatible), with
#                       .dockerArchive (a docker-archive file, e.g. for virtualisation.oci-containers imageFile)
#                       and .ociLayout (an OCI image layout directory) as extra attributes.
#   importDockerLock    a hocker-lock file (images.lock.json) -> one fetchdocker result per entry
#
# All hashes default to the registry digests, so `sha256`/`hash` may be omitted; docker2nix writes them anyway
# (hocker's format). Secrets never enter the store or a .drv: they reach the fixed-output builders through the
# impure variables DOCKER_USER/DOCKER_PASS/DOCKER_TOKEN, or a credentials file named by a DOCKER_CREDENTIALS
# entry of NIX_PATH (`-I DOCKER_CREDENTIALS=/root/docker-creds`), or /etc/nix-docker-credentials.txt; the
# builder reads the file, Nix only sees its name.
#
# Mirrors (pull-through caches, registries.conf v2): the `mirrors` argument, else an impure
# CONTAINERS_REGISTRIES_CONF (see mirrors.nix). They change where bytes come from, never a store path.
#
# One file per concern, wired here: hash.nix (digests, a Nix hash decoder), names.nix, credentials.nix, mirrors.nix,
# python-check.nix (the builders' first lines), fetch-blob.nix (the fixed-output fetchers), fetchdocker.nix (the
# image from its blobs), lock.nix (importDockerLock). tests/test_nix_split.py holds every .drv they produce.
{ hocker
, cacert ? null
  # the Nix system the builders run on; default: the hocker package's own, else the current system (impure only)
, system ? null
  # an interpreter that can import hocker_fetch: runs the blob fetchers (-m hocker_fetch.fetchblob), builds the
  # non-fixed-output derivations, runs compositeImage.sh.
  # The package names its own (passthru.hockerFetchPython, under libexec/); a virtualenv has bin/python.
, python ? (if builtins.isAttrs hocker && hocker ? hockerFetchPython
            then "${hocker}/${hocker.hockerFetchPython}" else "${hocker}/bin/python")
  # a POSIX shell for the builders (the overlay passes nixpkgs' bash)
, shell ? "/bin/sh"
  # what compositeImage.sh runs where the image is loaded (its shebang, its interpreter). The same as the builders'
  # unless cross-compiling: the overlay passes the host package set's, the builders' come from buildPackages.
, runtimePython ? python
, runtimeShell ? shell
, sslCertFile ? (if cacert == null then null else "${cacert}/etc/ssl/certs/ca-bundle.crt")
, credentialsFile ? null
  # registries.conf for the fetchers: an attribute set in its shape ({ registry = [ { prefix = "docker.io";
  # mirror = [ { location = "mirror.corp:5000"; } ]; } ]; }, written as TOML), or a file (a path, copied into the
  # store, or a store path). Either is a store input of every fetch, so the sandbox shows it. `{ }`: no mirrors,
  # whatever the environment says. null: CONTAINERS_REGISTRIES_CONF from the build's environment, if readable.
, mirrors ? null
}:
let
  buildSystem =
    if system != null then system
    else if builtins.isAttrs hocker && hocker ? system then hocker.system
    else builtins.currentSystem or (throw
      "hocker-fetch: pass `system` (e.g. \"x86_64-linux\"): `hocker` is not a derivation to take it from, and pure evaluation has no builtins.currentSystem");

  mirrorsSetup = import ./mirrors.nix { inherit mirrors; };
  blobs = import ./fetch-blob.nix {
    inherit hocker python shell sslCertFile;
    system = buildSystem;
    credentials = import ./credentials.nix { inherit credentialsFile; };
    mirrors = mirrorsSetup;
  };
  inherit (blobs) fetchDockerLayer fetchDockerConfig fetchDockerManifest;

  fetchdocker = import ./fetchdocker.nix {
    inherit python shell runtimePython runtimeShell fetchDockerManifest;
    system = buildSystem;
  };

  importDockerLockFor = import ./lock.nix { inherit fetchdocker fetchDockerConfig fetchDockerLayer; };
  # Without nixpkgs the images are for `system` (else the package's, else the current system), as the builders.
  importDockerLock = importDockerLockFor buildSystem;

  inherit (import ./names.nix) familiarName hockerName;
  inherit (import ./hash.nix) sha256ToHex;
  inherit (mirrorsSetup) registriesConf;
in
{
  inherit fetchDockerConfig fetchDockerLayer fetchDockerManifest fetchdocker familiarName hockerName sha256ToHex;
  # importDockerLock ./images.lock.json (images for `system`); importDockerLockFor SYSTEM ./images.lock.json
  inherit importDockerLock importDockerLockFor;
  # the registries.conf store path the fetchers use (null: the environment's), e.g. for skopeo in the same build
  inherit registriesConf;
}
