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
# CONTAINERS_REGISTRIES_CONF (see mirrorsPrelude). They change where bytes come from, never a store path.
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

  hubRegistry = "https://registry-1.docker.io/v2/";
  hubHosts = [ "registry-1.docker.io" "docker.io" "index.docker.io" "registry.hub.docker.com" ];

  # A path string: never copied into the store (the builder reads it when no env var is set). With flakes (pure
  # evaluation) builtins.nixPath is empty: `-I DOCKER_CREDENTIALS=` is not seen there, use `credentialsFile`.
  nixPathCredentials = builtins.filter (e: e.prefix == "DOCKER_CREDENTIALS") builtins.nixPath;
  defaultCredentialsFile =
    if nixPathCredentials != [ ] then (builtins.head nixPathCredentials).path else "/etc/nix-docker-credentials.txt";
  credentials = if credentialsFile != null then toString credentialsFile else defaultCredentialsFile;
  # A file the user named (argument or -I) must be readable in the build; the implicit default only if it exists.
  credentialsExplicit = credentialsFile != null || nixPathCredentials != [ ];

  bin = name: "${hocker}/bin/${name}";

  # Mirror URLs are not secret: a file in the store is fine (and the only kind the sandbox shows unasked).
  registriesConf =
    if mirrors == null then null
    else if builtins.isAttrs mirrors && !(mirrors ? outPath)
    then builtins.toFile "registries.conf" ((import ./toml.nix).toTOML mirrors)
    else if builtins.isPath mirrors then builtins.path { path = mirrors; name = "registries.conf"; }
    else if builtins.isString mirrors && builtins.hasContext mirrors then mirrors
    else if builtins.isAttrs mirrors then "${mirrors}"
    else if builtins.isString mirrors && builtins.substring 0 1 mirrors == "/"
    then builtins.path { path = mirrors; name = "registries.conf"; }
    else throw "hocker-fetch: `mirrors` must be a registries.conf attribute set or the absolute path of one, not ${builtins.toJSON mirrors}";

  stripDigest = d: let m = builtins.match "sha256:([0-9a-f]{64})" d; in if m == null then d else builtins.head m;
  checkHex = what: hex:
    if builtins.match "[0-9a-f]{64}" hex == null
    then throw "hocker-fetch: ${what} must be sha256:<64 hex digits> or 64 hex digits, not '${hex}'"
    else hex;

  # -- a sha256 Nix hash back to the hex digest (nixpkgs' lib has no decoder) -------------------------------
  # hocker-era files give the config only by its Nix hash, which is the config digest itself (the hash of a flat
  # fixed-output file is the sha256 of its bytes): decoding it lets their config be fetched by digest too.
  # Takes Nix base32 (52 characters, what hocker wrote), 64 hex digits, SRI `sha256-<base64>`, and
  # `sha256:<base32 or hex>`; anything else (or an invalid string) is null.
  charIndex = chars: builtins.listToAttrs
    (builtins.genList (i: { name = builtins.substring i 1 chars; value = i; }) (builtins.stringLength chars));
  base32Index = charIndex "0123456789abcdfghijklmnpqrsvwxyz";
  base64Index = charIndex "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  hexDigits = "0123456789abcdef";
  pow2 = [ 1 2 4 8 16 32 64 128 ];
  bytesToHex = bytes: builtins.concatStringsSep "" (map (b:
    builtins.substring (b / 16) 1 hexDigits + builtins.substring (b - b / 16 * 16) 1 hexDigits) bytes);
  chars = s: builtins.genList (i: builtins.substring i 1 s) (builtins.stringLength s);

  # Nix base32: character i (from the left) holds bits (51 - i) * 5 ... + 4 of the 32 bytes, little-endian.
  nixBase32ToHex = s:
    let
      values = map (c: base32Index.${c} or null) (chars s);
      bit = b:
        let v = builtins.elemAt values (51 - b / 5); k = b - b / 5 * 5;
        in (v / builtins.elemAt [ 1 2 4 8 16 ] k) - (v / builtins.elemAt [ 2 4 8 16 32 ] k) * 2;
      byte = j: builtins.foldl' (acc: k: acc + bit (8 * j + k) * builtins.elemAt pow2 k) 0 (builtins.genList (k: k) 8);
    in
    # the first character holds bit 255 and four bits beyond the hash, which must be zero
    if builtins.length values != 52 || builtins.elem null values || builtins.head values > 1 then null
    else bytesToHex (builtins.genList byte 32);

  # SRI base64 (44 characters, one `=`): big-endian 6-bit groups, four characters to three bytes.
  base64ToHex = s:
    let
      values = map (c: if c == "=" then 0 else base64Index.${c} or null) (chars s);
      group = g: builtins.foldl' (acc: i: acc * 64 + builtins.elemAt values (4 * g + i)) 0 [ 0 1 2 3 ];
      bytes = builtins.concatLists (builtins.genList (g:
        let n = group g; in [ (n / 65536) (n / 256 - n / 65536 * 256) (n - n / 256 * 256) ]) 11);
    in
    if builtins.match "[A-Za-z0-9+/]{43}=" s == null || builtins.elem null values then null
    # 33 bytes decoded; the last is padding and must be zero (as must the low 2 bits of the 43rd character)
    else if builtins.elemAt bytes 32 != 0 then null
    else bytesToHex (builtins.genList (builtins.elemAt bytes) 32);

  sha256ToHex = h:
    let
      sri = builtins.match "sha256-(.*)" h;
      prefixed = builtins.match "sha256:(.*)" h;
      bare = if prefixed != null then builtins.head prefixed else h;
    in
    if h == null then null
    else if sri != null then base64ToHex (builtins.head sri)
    else if builtins.match "[0-9a-f]{64}" bare != null then bare
    else nixBase32ToHex bare;

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

  # nixpkgs' fetchdocker's repository name: the registry URI without its scheme, then repository and image name,
  # slashes collapsed (through a path, as it did): `registry-1.docker.io/v2/library/debian`.
  hockerName = registry: repository: imageName:
    let
      stripScheme = builtins.replaceStrings [ "https://" "http://" ] [ "" "" ];
      path = toString (/. + "/${stripScheme registry}/${repository}/${imageName}");
    in builtins.substring 1 (builtins.stringLength path - 1) path;

  # Runs a hocker tool (a console script, or the interpreter on hocker_fetch.fetchblob); adds the credentials file
  # only when no impure variable carries credentials.
  # Under a nix-daemon the builder is a build user in the sandbox: a file outside extra-sandbox-paths does not
  # exist there, one not readable by group nixbld cannot be read. A file the user named (credentialsFileExplicit),
  # or one that exists but cannot be read, fails the build with one line (exit 3, as hocker's auth errors)
  # naming the file, the build user and the fix; never a silent anonymous pull. Only shell builtins: no PATH.
  fetchScript = ''
    if [ -z "''${DOCKER_TOKEN:-}''${DOCKER_USER:-}''${DOCKER_PASS:-}" ] && [ -n "''${credentialsFile:-}" ]; then
      if [ -r "$credentialsFile" ]; then
        set -- "$@" --credentials-file "$credentialsFile"
      elif [ -n "''${credentialsFileExplicit:-}" ] || [ -e "$credentialsFile" ]; then
        uid=; name=; host=
        while read -r k v rest; do if [ "$k" = Uid: ]; then uid=$v; fi; done < /proc/self/status 2>/dev/null
        while IFS=: read -r n x i rest; do if [ "$i" = "$uid" ]; then name=$n; fi; done < /etc/passwd 2>/dev/null
        if read -r inner outer rest < /proc/self/uid_map 2>/dev/null && [ "$inner" = "$uid" ] && [ "$outer" != "$uid" ]; then
          host="; uid $outer outside the sandbox"
        fi
        who="build user ''${name:-?} (uid ''${uid:-?}$host)"
        env="or give DOCKER_USER/DOCKER_PASS (or DOCKER_TOKEN) in the nix-daemon's environment"
        # single-user Nix (the builder is you: it owns the store directory, in the sandbox too) gets advice of its own
        if [ -O "''${NIX_STORE:-/nix/store}" ]; then
          who="user ''${name:-?} (uid ''${uid:-?}$host, single-user Nix)"
          env="or give DOCKER_USER/DOCKER_PASS (or DOCKER_TOKEN) in nix-build's environment"
          if [ -e "$credentialsFile" ]; then
            echo "hocker-fetch: the credentials file $credentialsFile is not readable by $who: chmod u+r FILE, $env" >&2
          elif [ -n "$host" ]; then
            echo "hocker-fetch: the credentials file $credentialsFile does not exist in the sandbox ($who): list it in extra-sandbox-paths of nix.conf, $env" >&2
          else
            echo "hocker-fetch: the credentials file $credentialsFile does not exist: check the path given as -I DOCKER_CREDENTIALS=PATH or credentialsFile, $env" >&2
          fi
        elif [ -e "$credentialsFile" ]; then
          echo "hocker-fetch: the credentials file $credentialsFile is not readable by the $who: make it group nixbld, mode 0640 (chgrp nixbld FILE; chmod 0640 FILE), $env" >&2
        else
          echo "hocker-fetch: the credentials file $credentialsFile does not exist in the build ($who): list it in extra-sandbox-paths of the nix-daemon's nix.conf, group nixbld, mode 0640, $env" >&2
        fi
        exit 3
      fi
    fi
    exec "$@" --out "$out"
  '';

  # The interpreter (named by the derivation attribute `var`) must be executable by the build user. Under a
  # nix-daemon a virtualenv under /root or a home directory is not, and the shell then fails with its own
  # "30: exec: ...: Permission denied" (exit 126) that names no cause: one line with the fix instead, before the
  # builder starts. Only shell builtins: no PATH.
  pythonCheck = var: ''
    if [ ! -x "''${${var}:-}" ]; then
      uid=; name=
      while read -r k v rest; do if [ "$k" = Uid: ]; then uid=$v; fi; done < /proc/self/status 2>/dev/null
      while IFS=: read -r n x i rest; do if [ "$i" = "$uid" ]; then name=$n; fi; done < /etc/passwd 2>/dev/null
      echo "hocker-fetch: the build user ''${name:-?} (uid ''${uid:-?}) cannot run the interpreter ''${${var}}: install hocker-fetch where the build users can read it (a virtualenv made from /usr/bin/python3 outside /root and /home, e.g. under /opt, mode 0755) and list it and its Python in the nix-daemon's extra-sandbox-paths, or use the flake's or overlay's package (docs/nix.md)" >&2
      exit 126
    fi
  '';

  # The `mirrors` file comes as hockerRegistriesConf, not as CONTAINERS_REGISTRIES_CONF itself: Nix sets every
  # impureEnvVars name after the .drv's own variables (to "" when unset), which would hide it. It wins (it is in
  # the .drv: what was asked for). Else an impure CONTAINERS_REGISTRIES_CONF is used if the builder can read it;
  # one it cannot read (outside the sandbox paths, or not readable by the build user) is one line on stderr and
  # the fetch goes on without mirrors: they only change where verified bytes come from, and the origin is always
  # tried. (Not a failure, unlike a named credentials file: there an anonymous pull would mislead.)
  mirrorsPrelude = ''
    if [ -n "''${hockerRegistriesConf:-}" ]; then
      export CONTAINERS_REGISTRIES_CONF="$hockerRegistriesConf"
    elif [ -z "''${CONTAINERS_REGISTRIES_CONF:-}" ]; then
      unset CONTAINERS_REGISTRIES_CONF
    elif [ ! -r "$CONTAINERS_REGISTRIES_CONF" ]; then
      echo "hocker-fetch: CONTAINERS_REGISTRIES_CONF=$CONTAINERS_REGISTRIES_CONF cannot be read in this build (the sandbox shows only store inputs and extra-sandbox-paths): fetching without mirrors; pass them as nix/default.nix's mirrors argument (or the NixOS option services.hocker-images.mirrors)" >&2
      export CONTAINERS_REGISTRIES_CONF=/dev/null
    fi
  '';

  # nixpkgs' convention: an impure NIX_SSL_CERT_FILE (e.g. a TLS-intercepting proxy's CA) wins over cacert's
  # bundle in SSL_CERT_FILE. Only inside these builders: the CLI itself keeps SSL_CERT_FILE first, as documented.
  sslPrelude = ''
    if [ -n "''${NIX_SSL_CERT_FILE:-}" ] && [ -r "$NIX_SSL_CERT_FILE" ]; then export SSL_CERT_FILE="$NIX_SSL_CERT_FILE"; fi
  '';

  # Store names are at most 211 characters, the .drv's included: 207 for a derivation's name (nixpkgs'
  # sanitizeDerivationName limit). A longer one keeps its start and its suffix around a hash of the whole, so two
  # long names still differ.
  shorten = base: suffix:
    let full = base + suffix;
    in if builtins.stringLength full <= 207 then full
       else "${builtins.substring 0 (207 - 33 - builtins.stringLength suffix) base}-${builtins.substring 0 32 (builtins.hashString "sha256" full)}${suffix}";

  # The command a fixed-output builder runs. A cold build starts one per layer, so blobs skip the console-script
  # wrapper: the interpreter runs the lean entry point directly (hocker_fetch.fetchblob is hocker-layer).
  command = tool: if tool == "hocker-layer" then [ python "-m" "hocker_fetch.fetchblob" ] else [ (bin tool) ];

  fixedOutput = { name, tool, toolArgs, hash, sha256, default }:
    if hash != null && sha256 != null
    then throw "hocker-fetch: ${name}: give either hash or sha256, not both"
    else builtins.derivation ({
      inherit name;
      system = buildSystem;
      builder = shell;
      args = [ "-c" (pythonCheck "hockerPython" + sslPrelude + mirrorsPrelude + fetchScript) "hocker-fetch" ]
        ++ (command tool) ++ [ "--quiet" ] ++ toolArgs;
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
      credentialsFile = credentials;
      credentialsFileExplicit = credentialsExplicit;
      PYTHONDONTWRITEBYTECODE = "1";
    } // (if registriesConf == null then { } else { hockerRegistriesConf = registriesConf; })
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
      # New (docker2nix) files: the familiar name (debian:jessie). hocker-era files (no imageDigest) keep the name
      # nixpkgs' fetchdocker loaded them under (registry-1.docker.io/v2/library/debian:jessie): configurations
      # run it by that name.
    , image ? (if imageDigest == null then "${hockerName registry repository imageName}:${tag}"
               else "${familiarName registry repository imageName}:${tag}")
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
      build = { name, command, spec }: builtins.derivation ({
        inherit name;
        system = buildSystem;
        # Through the shell so the interpreter gets its full path as argv[0] (Nix passes a bare name, and a
        # virtualenv's python then cannot find its site-packages with PATH unset).
        builder = shell;
        builderPython = python;
        args = [ "-c" (pythonCheck "builderPython" + ''exec "$builderPython" -m hocker_fetch.nixbuild "$0"'') command ];
        imageSpec = builtins.toJSON spec;
        preferLocalBuild = true;
        allowSubstitutes = false;
        PYTHONDONTWRITEBYTECODE = "1";
      } // (if command != "composite" then { } else {
        # written into compositeImage.sh: they run on the machine that loads the image (only this output
        # refers to them, so the archive and the layout do not depend on the host's packages)
        python = runtimePython;
        shell = runtimeShell;
      }));
      composite = build { name = shorten name ""; inherit spec; command = "composite"; };
      dockerArchive = build {
        name = shorten "docker-image-${name}-${tag}" ".tar";
        command = "docker-archive";
        inherit spec;
      };
      ociLayout =
        if imageManifest == null
        then throw "hocker-fetch: ${name}.ociLayout needs the pinned manifest (imageDigest); regenerate with docker2nix"
        else build {
          name = shorten "oci-image-${name}-${tag}" "";
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
        args = [ "-c" (pythonCheck "python"
          + ''exec "$python" -c 'import os; os.symlink(os.environ["target"], os.environ["out"])' '') ];
        target = "${composite}/compositeImage.sh";
        preferLocalBuild = true;
        allowSubstitutes = false;
      };
    };

  # -- importDockerLock: a hocker-lock file -> { <entry> = fetchdocker result; } -------------------------------
  # Read at evaluation time (builtins.fromJSON, no import-from-derivation); every blob is fetched by its digest
  # with the digest as its hash, so the store paths are those of a docker2nix file for the same image. The
  # platform is that of `hostSystem` (the system the images are for); a Mac takes the Linux image of its CPU.
  # `lockFile` may also be the file's data, already parsed (an attribute set: filtered, merged, or inline).
  lockFileVersion = 1;
  # The image platform a Nix system runs (nixgen.py's NIX_SYSTEMS, the other way round; a Mac: its CPU's Linux).
  systemPlatforms = {
    x86_64-linux = "linux/amd64"; aarch64-linux = "linux/arm64/v8"; i686-linux = "linux/386";
    armv7l-linux = "linux/arm/v7"; armv6l-linux = "linux/arm/v6"; armv5tel-linux = "linux/arm/v5";
    powerpc64le-linux = "linux/ppc64le"; s390x-linux = "linux/s390x"; riscv64-linux = "linux/riscv64";
    mips64el-linux = "linux/mips64le"; loongarch64-linux = "linux/loong64";
  };
  importDockerLockFor = hostSystem: lockFile:
    let
      parsed = builtins.isAttrs lockFile && !(lockFile ? outPath);
      source = if parsed then "the lock data" else toString lockFile;
      fail = msg: throw "hocker-fetch: ${source}: ${msg}";
      linuxSystem = builtins.replaceStrings [ "-darwin" ] [ "-linux" ] hostSystem;
      # A command that works when pasted: `add` replaces the entry, so it names the entry's platforms and the
      # missing one, the entry's own tag (or the digest it was added by), and the lock file.
      quote = s: if builtins.match "[A-Za-z0-9_./:@+=-]+" s != null then s
        else "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
      addHint = name: entry: path:
        let
          wanted = systemPlatforms.${linuxSystem} or null;
          had = entry.platforms or "all";
          platforms = if builtins.isList had then had ++ [ wanted ] else [ ];
          ref = "${entry.host or entry.registry}/${path}" + (if entry.tag or null != null then ":${entry.tag}"
            else "@${if entry.index or null != null then entry.index.digest else (builtins.head (builtins.attrValues entry.systems)).manifest.digest}");
          file = if parsed then "" else "--file ${quote source} ";
        in
        if wanted == null then "hocker-lock has no image platform for ${hostSystem}"
        else if !(builtins.isList had) then
          "the image has none for ${wanted} (the entry has --platform all); pin another image for ${hostSystem}"
        else "run `hocker-lock ${file}add --name ${quote name}"
          + builtins.concatStringsSep "" (map (p: " --platform ${p}") platforms) + " ${quote ref}`";
      lock = if parsed then lockFile else builtins.fromJSON (builtins.readFile lockFile);
      version = lock.version or null;
      foreignType = t: builtins.match ".*(foreign|nondistributable).*" t != null;
      entryFor = name: entry:
        let
          field = attrs: key: attrs.${key} or (fail "entry '${name}' has no `${key}`: run `hocker-lock add` again");
          path = field entry "repository";
          parts = builtins.match "(.*)/([^/]+)" path;
          repository = if parts == null then "" else builtins.elemAt parts 0;
          imageName = if parts == null then path else builtins.elemAt parts 1;
          registry = field entry "registry";
          index = entry.index or null;
          # an entry added by digest has no tag: docker2nix's stand-in, from the digest it was pinned by
          tag = if entry.tag or null != null then entry.tag
            else "sha256-${builtins.substring 7 12 (if index != null then index.digest else imageDigest)}";
          systems = field entry "systems";
          pinned = systems.${hostSystem} or (systems.${linuxSystem} or (fail
            ("entry '${name}' is locked for ${builtins.concatStringsSep ", " (builtins.attrNames systems)} only, "
              + "not for ${hostSystem}; " + addHint name entry path)));
          imageDigest = (field pinned "manifest").digest;
          # the attribute name as a store name: what Nix does not allow there (e.g. `'`) becomes `-`
          storeName = builtins.concatStringsSep "" (map (x: if builtins.isList x then "-" else x)
            (builtins.split "[^A-Za-z0-9+._?=-]+" name));
        in
        fetchdocker {
          name = storeName;
          inherit registry repository imageName tag imageDigest;
          indexDigest = if index == null then null else index.digest;
          platform = pinned.platform or null;
          imageConfig = fetchDockerConfig {
            inherit registry repository imageName tag imageDigest;
            configDigest = (field pinned "config").digest;
          };
          imageLayers = map (l: fetchDockerLayer {
            inherit registry repository imageName;
            layerDigest = l.digest;
            foreign = foreignType (l.mediaType or "");
          }) (field pinned "layers");
        };
    in
    if !(builtins.isAttrs lock) then fail "not a hocker-lock file (no JSON object)"
    else if lock ? lockVersion then fail "a docker2nix --json file, not a hocker-lock file (use `hocker-lock add`)"
    else if !(builtins.isInt version) then fail "not a hocker-lock file (no integer `version`)"
    else if version > lockFileVersion then fail
      "lock file version ${toString version}, this hocker-fetch reads version ${toString lockFileVersion} only: upgrade hocker-fetch"
    else if version < 1 then fail "unknown lock file version ${toString version}"
    else builtins.mapAttrs entryFor (lock.images or { });
  # Without nixpkgs the images are for `system` (else the package's, else the current system), as the builders.
  importDockerLock = importDockerLockFor buildSystem;
in
{
  inherit fetchDockerConfig fetchDockerLayer fetchDockerManifest fetchdocker familiarName hockerName sha256ToHex;
  # importDockerLock ./images.lock.json (images for `system`); importDockerLockFor SYSTEM ./images.lock.json
  inherit importDockerLock importDockerLockFor;
  # the registries.conf store path the fetchers use (null: the environment's), e.g. for skopeo in the same build
  inherit registriesConf;
}
