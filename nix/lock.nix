# importDockerLockFor SYSTEM LOCKFILE: a hocker-lock file -> { <entry> = fetchdocker result; }.
{ fetchdocker, fetchDockerConfig, fetchDockerLayer }:
let
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
in
importDockerLockFor
