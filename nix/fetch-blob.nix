# The blob fetchers: one flat fixed-output derivation per layer, config or manifest, run by a hocker tool.
{ hocker
, python
, shell
, system
, sslCertFile
  # ./credentials.nix and ./mirrors.nix for this fetcher set
, credentials
, mirrors
}:
let
  inherit (import ./hash.nix) stripDigest checkHex sha256ToHex;
  inherit (import ./names.nix) hubRegistry repoPath sanitize shorten;
  pythonCheck = import ./python-check.nix;

  bin = name: "${hocker}/bin/${name}";

  # nixpkgs' convention: an impure NIX_SSL_CERT_FILE (e.g. a TLS-intercepting proxy's CA) wins over cacert's
  # bundle in SSL_CERT_FILE. Only inside these builders: the CLI itself keeps SSL_CERT_FILE first, as documented.
  sslPrelude = ''
    if [ -n "''${NIX_SSL_CERT_FILE:-}" ] && [ -r "$NIX_SSL_CERT_FILE" ]; then export SSL_CERT_FILE="$NIX_SSL_CERT_FILE"; fi
  '';

  # The command a fixed-output builder runs. A cold build starts one per layer, so blobs skip the console-script
  # wrapper: the interpreter runs the lean entry point directly (hocker_fetch.fetchblob is hocker-layer).
  command = tool: if tool == "hocker-layer" then [ python "-m" "hocker_fetch.fetchblob" ] else [ (bin tool) ];

  fixedOutput = { name, tool, toolArgs, hash, sha256, default }:
    if hash != null && sha256 != null
    then throw "hocker-fetch: ${name}: give either hash or sha256, not both"
    else builtins.derivation ({
      inherit name system;
      builder = shell;
      args = [ "-c" (pythonCheck "hockerPython" + sslPrelude + mirrors.mirrorsPrelude + credentials.fetchScript)
               "hocker-fetch" ] ++ (command tool) ++ [ "--quiet" ] ++ toolArgs;
      hockerPython = python;
      outputHashMode = "flat";
      outputHashAlgo = "sha256";
      outputHash =
        if hash != null then hash
        else if sha256 != null then sha256
        else if default != null then default
        else throw "hocker-fetch: ${name} needs sha256 or hash (or a digest)";
      preferLocalBuild = true;
      # Read from the nix-build/daemon environment, never recorded in the .drv.
      impureEnvVars = [
        "DOCKER_USER" "DOCKER_PASS" "DOCKER_TOKEN"
        "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy"
        "HTTP_PROXY" "HTTPS_PROXY" "FTP_PROXY" "ALL_PROXY" "NO_PROXY"
        "NIX_SSL_CERT_FILE" "CONTAINERS_REGISTRIES_CONF"
      ];
      PYTHONDONTWRITEBYTECODE = "1";
    } // credentials.env // mirrors.env
      // (if sslCertFile == null then { } else { SSL_CERT_FILE = sslCertFile; }));

  fetchDockerLayer =
    { registry ? hubRegistry
    , repository ? "library"
    , imageName
    , layerDigest
    , sha256 ? null
    , hash ? null
    , tag ? "unused"
    , name ? null
      # a foreign (non-distributable) layer: the builder's not-found message then says so
    , foreign ? false
    , ...
    }:
    let hex = checkHex "layerDigest" (stripDigest layerDigest);
    in fixedOutput {
      # hocker's store name: the same layer (from any image) is one store path. `name` overrides it, as it did
      # for nixpkgs' fetchDockerLayer.
      name = if name != null then name else "docker-layer-${hex}.tar.gz";
      tool = "hocker-layer";
      toolArgs = [ "--registry" registry "--layer" "sha256:${hex}" ] ++ (if foreign then [ "--foreign" ] else [ ])
        ++ [ (repoPath repository imageName) tag ];
      inherit sha256 hash;
      default = hex;
    } // { layerDigest = "sha256:${hex}"; };

  fetchDockerConfig =
    { registry ? hubRegistry
    , repository ? "library"
    , imageName
    , tag ? "latest"
    , imageDigest ? null
    , configDigest ? null
    , sha256 ? null
    , hash ? null
    , name ? null
    , ...
    }:
    let
      path = repoPath repository imageName;
      storeName = default: if name != null then name else default;
      byDigest = configDigest != null;
      # hocker-era files (no configDigest): their Nix hash is the config digest itself, so the config is still
      # fetched by digest (a moved tag cannot break them) and the result names its digest (the image ID).
      hashHex = if hash != null then sha256ToHex hash else sha256ToHex sha256;
      hex = if byDigest then checkHex "configDigest" (stripDigest configDigest) else hashHex;
      hockerStoreName = storeName (shorten "${sanitize repository}_${imageName}_${tag}" "-config.json");
    in
    fixedOutput
      (if byDigest then {
        # The config is a blob like any other: fetched by its digest, one request.
        name = storeName "docker-config-${hex}.json";
        tool = "hocker-layer";
        toolArgs = [ "--registry" registry "--layer" "sha256:${hex}" path tag ];
        inherit sha256 hash;
        default = hex;
      } else if hex != null then {
        # hocker's store name (the same store path as before), fetched by the digest its hash is.
        name = hockerStoreName;
        tool = "hocker-layer";
        toolArgs = [ "--registry" registry "--layer" "sha256:${hex}" path tag ];
        inherit sha256 hash;
        default = null;
      } else {
        # No usable hash (evaluation fails in fixedOutput): the config of the pinned manifest, or of the tag.
        name = hockerStoreName;
        tool = "hocker-config";
        toolArgs = [ "--registry" registry (if imageDigest != null then "${path}@${imageDigest}" else path) ]
          ++ (if imageDigest != null then [ ] else [ tag ]);
        inherit sha256 hash;
        default = null;
      }) // { configDigest = if hex != null then "sha256:${hex}" else null; };

  fetchDockerManifest =
    { registry ? hubRegistry
    , repository ? "library"
    , imageName
    , imageDigest
    , ...
    }:
    let hex = checkHex "imageDigest" (stripDigest imageDigest);
    in fixedOutput {
      name = "docker-manifest-${hex}.json";
      tool = "hocker-manifest";
      toolArgs = [ "--registry" registry "${repoPath repository imageName}@sha256:${hex}" ];
      sha256 = null;
      hash = null;
      default = hex;
    } // { imageDigest = "sha256:${hex}"; };
in
{
  inherit fetchDockerLayer fetchDockerConfig fetchDockerManifest;
}
