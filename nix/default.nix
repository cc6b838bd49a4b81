# hocker-fetch's Nix functions, on builtins.derivation: nothing from nixpkgs is needed but the hocker package
# (anything with hocker-fetch's console scripts under bin/: the overlay's package, or a virtualenv in tests).
#
#   fetchDockerConfig   the image config JSON, one flat fixed-output derivation
#   fetchDockerLayer    one compressed layer blob, as served (store name from the digest: shared by images)
#   fetchDockerManifest the pinned image manifest, exactly as served (for the OCI layout)
#   fetchdocker         $out/compositeImage.sh (streams a `docker load` archive; hocker-compatible), with
#                       .dockerArchive (a docker-archive file, e.g. for virtualisation.oci-containers imageFile)
#                       and .ociLayout (an OCI image layout directory) as extra attributes.
#
# All hashes default to the registry digests, so `sha256`/`hash` may be omitted; docker2nix writes them anyway
# (hocker's format). Secrets never enter the store or a .drv: they reach the fixed-output builders through the
# impure variables DOCKER_USER/DOCKER_PASS/DOCKER_TOKEN, or a credentials file named by a DOCKER_CREDENTIALS
# entry of NIX_PATH (`-I DOCKER_CREDENTIALS=/root/docker-creds`), or /etc/nix-docker-credentials.txt; the
# builder reads the file, Nix only sees its name.
{ hocker
, cacert ? null
, system ? builtins.currentSystem
  # an interpreter that can import hocker_fetch: builds the non-fixed-output derivations, runs compositeImage.sh
, python ? "${hocker}/bin/python"
  # a POSIX shell for the fetch wrapper and the compositeImage.sh shebang (the overlay passes nixpkgs' bash)
, shell ? "/bin/sh"
, sslCertFile ? (if cacert == null then null else "${cacert}/etc/ssl/certs/ca-bundle.crt")
, credentialsFile ? null
}:
let
  hubRegistry = "https://registry-1.docker.io/v2/";
  hubHosts = [ "registry-1.docker.io" "docker.io" "index.docker.io" "registry.hub.docker.com" ];

  # A path string: never copied into the store (the builder reads it if it exists and no env var is set).
  defaultCredentialsFile =
    let entries = builtins.filter (e: e.prefix == "DOCKER_CREDENTIALS") builtins.nixPath;
    in if entries != [ ] then (builtins.head entries).path else "/etc/nix-docker-credentials.txt";
  credentials = if credentialsFile != null then toString credentialsFile else defaultCredentialsFile;

  bin = name: "${hocker}/bin/${name}";

  stripDigest = d: let m = builtins.match "sha256:([0-9a-f]{64})" d; in if m == null then d else builtins.head m;
  checkHex = what: hex:
    if builtins.match "[0-9a-f]{64}" hex == null
    then throw "hocker-fetch: ${what} must be sha256:<64 hex digits> or 64 hex digits, not '${hex}'"
    else hex;

  repoPath = repository: imageName: if repository == "" then imageName else "${repository}/${imageName}";
  sanitize = s: builtins.replaceStrings [ "/" ":" "@" " " ] [ "_" "_" "_" "_" ] s;

  # The loaded image's name: `debian:jessie` on Docker Hub, `host:port/a/b:tag` elsewhere.
  familiarName = registry: repository: imageName:
    let
      m = builtins.match "([a-z]+://)?([^/]+).*" registry;
      host = if m == null then registry else builtins.elemAt m 1;
      path = repoPath repository imageName;
      lib = builtins.match "library/(.*)" path;
    in
    if builtins.elem host hubHosts then (if lib != null then builtins.head lib else path) else "${host}/${path}";

  # Runs a hocker console script; adds the credentials file only when no impure variable carries credentials.
  fetchScript = ''
    if [ -z "''${DOCKER_TOKEN:-}''${DOCKER_USER:-}''${DOCKER_PASS:-}" ] && [ -n "''${credentialsFile:-}" ] && [ -r "$credentialsFile" ]; then
      set -- "$@" --credentials-file "$credentialsFile"
    fi
    exec "$@" --out "$out"
  '';

  fixedOutput = { name, tool, toolArgs, hash, sha256, default }:
    builtins.derivation ({
      inherit name system;
      builder = shell;
      args = [ "-c" fetchScript "hocker-fetch" (bin tool) "--quiet" ] ++ toolArgs;
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
        "NIX_SSL_CERT_FILE"
      ];
      credentialsFile = credentials;
      PYTHONDONTWRITEBYTECODE = "1";
    } // (if sslCertFile == null then { } else { SSL_CERT_FILE = sslCertFile; }));

  fetchDockerLayer =
    { registry ? hubRegistry
    , repository ? "library"
    , imageName
    , layerDigest
    , sha256 ? null
    , hash ? null
    , tag ? "unused"
    , ...
    }:
    let hex = checkHex "layerDigest" (stripDigest layerDigest);
    in fixedOutput {
      # hocker's store name: the same layer (from any image) is one store path.
      name = "docker-layer-${hex}.tar.gz";
      tool = "hocker-layer";
      toolArgs = [ "--registry" registry "--layer" "sha256:${hex}" (repoPath repository imageName) tag ];
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
    , ...
    }:
    let
      path = repoPath repository imageName;
      byDigest = configDigest != null;
      hex = checkHex "configDigest" (stripDigest configDigest);
    in
    fixedOutput
      (if byDigest then {
        # The config is a blob like any other: fetched by its digest, one request.
        name = "docker-config-${hex}.json";
        tool = "hocker-layer";
        toolArgs = [ "--registry" registry "--layer" "sha256:${hex}" path tag ];
        inherit sha256 hash;
        default = hex;
      } else {
        # hocker-era files: the config of the pinned manifest, or (no digest at all) of the tag.
        name = "${sanitize repository}_${imageName}_${tag}-config.json";
        tool = "hocker-config";
        toolArgs = [ "--registry" registry (if imageDigest != null then "${path}@${imageDigest}" else path) ]
          ++ (if imageDigest != null then [ ] else [ tag ]);
        inherit sha256 hash;
        default = null;
      }) // { configDigest = if byDigest then "sha256:${hex}" else null; };

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

  fetchdocker =
    { name
    , registry ? hubRegistry
    , repository ? "library"
    , imageName
    , tag ? "latest"
    , imageConfig
    , imageLayers
    , imageDigest ? null
    , indexDigest ? null
    , platform ? null
    , image ? "${familiarName registry repository imageName}:${tag}"
    , imageManifest ? (if imageDigest == null then null
                       else fetchDockerManifest { inherit registry repository imageName imageDigest; })
    , ...
    }:
    let
      spec = {
        config = { path = "${imageConfig}"; digest = imageConfig.configDigest or null; };
        layers = map (l: { path = "${l}"; digest = l.layerDigest or null; }) imageLayers;
        repoTags = [ image ];
        inherit tag image platform;
        manifest = null;
      };
      build = { name, command, spec }: builtins.derivation {
        inherit name system python shell;
        # Through the shell so the interpreter gets its full path as argv[0] (Nix passes a bare name, and a
        # virtualenv's python then cannot find its site-packages with PATH unset).
        builder = shell;
        args = [ "-c" ''exec "$python" -m hocker_fetch.nixbuild "$0"'' command ];
        imageSpec = builtins.toJSON spec;
        preferLocalBuild = true;
        allowSubstitutes = false;
        PYTHONDONTWRITEBYTECODE = "1";
      };
      composite = build { inherit name spec; command = "composite"; };
      dockerArchive = build {
        name = "docker-image-${name}-${tag}.tar";
        command = "docker-archive";
        inherit spec;
      };
      ociLayout =
        if imageManifest == null
        then throw "hocker-fetch: ${name}.ociLayout needs the pinned manifest (imageDigest); regenerate with docker2nix"
        else build {
          name = "oci-image-${name}-${tag}";
          command = "oci-layout";
          spec = spec // {
            manifest = {
              path = "${imageManifest}";
              digest = imageManifest.imageDigest or imageDigest;
              mediaType = null;
            };
          };
        };
    in
    composite // {
      inherit image imageDigest indexDigest platform imageConfig imageLayers dockerArchive ociLayout;
      configDigest = imageConfig.configDigest or null;
      # hocker's fetchdocker had passthru.image; nixpkgs-style consumers look for passthru
      passthru = { inherit image dockerArchive ociLayout; };
      # An executable that streams the docker-load archive (a symlink to compositeImage.sh): what
      # virtualisation.oci-containers.containers.<name>.imageStream takes, with `image = <result>.image`.
      stream = builtins.derivation {
        name = "${name}-stream";
        inherit (composite) system;
        inherit python shell;
        builder = shell;
        args = [ "-c" ''exec "$python" -c 'import os; os.symlink(os.environ["target"], os.environ["out"])' '' ];
        target = "${composite}/compositeImage.sh";
        preferLocalBuild = true;
        allowSubstitutes = false;
      };
    };
in
{
  inherit fetchDockerConfig fetchDockerLayer fetchDockerManifest fetchdocker familiarName;
}
