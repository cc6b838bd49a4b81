# NixOS module: load images pinned with docker2nix into docker or podman at boot, and registry credentials for
# the nix-daemon's fetches.
#
#   services.hocker-images = {
#     enable = true;
#     images = [ (pkgs.callPackage ./debian.nix { }) ];   # needs hocker-fetch's overlay; or an attribute set:
#     # images = pkgs.importDockerLock ./images.lock.json;
#     registryCredentialsFile = "/run/secrets/registry";  # private registries (a string: never in the store)
#     mirrors = { registry = [ { prefix = "docker.io"; location = "registry-1.docker.io";
#                                mirror = [ { location = "mirror.corp:5000"; } ]; } ]; };  # all Nix builds' fetches
#   };
#
# A oneshot unit runs after the container engine and loads each image's .dockerArchive (no Python at boot); an
# image whose ID (its config digest) is already there under its name is skipped, so a reboot costs nothing, and
# one there under another name only gets tagged. The chosen engine is enabled (mkDefault), as oci-containers does. For
# virtualisation.oci-containers use `imageStream = image.stream; image = image.image;` instead (no second copy
# of the layers in the store).
{ config, lib, pkgs, ... }:
let
  cfg = config.services.hocker-images;

  # null: docker if it is enabled, else podman (which this module then enables).
  backend =
    if cfg.backend != null then cfg.backend
    else if config.virtualisation.docker.enable then "docker" else "podman";
  engine =
    if backend == "docker" then "${config.virtualisation.docker.package}/bin/docker"
    else "${config.virtualisation.podman.package}/bin/podman";

  # What nix/default.nix's fetchdocker returns: a derivation with the attributes only it sets together (a
  # dockerTools image, a pullImage tarball or any other package has none of imageConfig/imageLayers/dockerArchive).
  fetchdockerResult = lib.mkOptionType {
    name = "fetchdocker";
    description = "fetchdocker result (a docker2nix file called with hocker-fetch's fetchers)";
    check = x: lib.isDerivation x && x ? image && x ? imageConfig && x ? imageLayers && x ? dockerArchive;
    merge = lib.options.mergeEqualOption;
  };

  # A file name as a plain string. A path literal (./secret) would be copied into the world-readable store as
  # soon as it is interpolated, and a string with context (or under the store directory) already is there.
  secretPath = lib.mkOptionType {
    name = "secretPath";
    description = "absolute path outside the Nix store, as a string (\"/run/secrets/registry\", not a path literal)";
    check = x: builtins.isString x && !builtins.hasContext x && lib.hasPrefix "/" x
      && !lib.hasPrefix "${builtins.storeDir}/" x;
    merge = lib.options.mergeEqualOption;
  };

  # registries.conf for the nix-daemon's fetches: an attribute set (written as TOML) or a file in the store. A
  # plain string outside the store is refused: the sandbox would not show it, and pure evaluation cannot copy it.
  # (the file first: a derivation is an attribute set too)
  registriesConfType = lib.types.either (lib.mkOptionType {
    name = "registriesConfFile";
    description = "registries.conf file in the Nix store (a path literal, or e.g. config.environment.etc.\"containers/registries.conf\".source)";
    check = x: builtins.isPath x || (lib.isStringLike x && lib.hasPrefix "${builtins.storeDir}/" "${x}");
    merge = lib.options.mergeEqualOption;
  }) (lib.types.attrsOf lib.types.anything);
  registriesConf =
    if cfg.mirrors == null then null
    else if builtins.isAttrs cfg.mirrors && !(cfg.mirrors ? outPath)
    then builtins.toFile "registries.conf" ((import ./toml.nix).toTOML cfg.mirrors)
    else "${cfg.mirrors}";

  # An image counts as loaded only when its ID (the config digest) is there AND its name:tag points at it. With
  # the ID alone (the same image loaded under another name, or the tag moved to another image) it is only tagged.
  # It loads from the .dockerArchive file, not compositeImage.sh: the archive refers to no other store path, so
  # the unit's closure holds no interpreter (compositeImage.sh runs Python). `{{.Id}}` is `sha256:HEX` in docker
  # and bare HEX in podman.
  loadOne = image:
    let
      say = msg: "echo ${lib.escapeShellArg "hocker-images: ${image.image} ${msg}"}";
      name = lib.escapeShellArg image.image;
      id = image.configDigest or null;
      load = ''
        echo ${lib.escapeShellArg "hocker-images: loading ${image.image}"}
        ${engine} load -i ${image.dockerArchive}
      '';
    in
    if id == null then load else ''
      if ${engine} image inspect ${id} >/dev/null 2>&1; then
        current=$(${engine} image inspect --format '{{.Id}}' ${name} 2>/dev/null || true)
        if [ "sha256:''${current#sha256:}" = ${id} ]; then
          ${say "is already loaded"}
        else
          ${say "is loaded under another name: tagging it"}
          ${engine} tag ${id} ${name}
        fi
      else
        ${load}
      fi
    '';

  # images: a list, or an attribute set of them (what importDockerLock returns), taken in name order
  imageList = if builtins.isAttrs cfg.images then builtins.attrValues cfg.images else cfg.images;
in
{
  options.services.hocker-images = {
    enable = lib.mkEnableOption "loading container images pinned with docker2nix at boot";
    images = lib.mkOption {
      type = lib.types.either (lib.types.listOf fetchdockerResult) (lib.types.attrsOf fetchdockerResult);
      default = [ ];
      example = lib.literalExpression "pkgs.importDockerLock ./images.lock.json  # or [ (pkgs.callPackage ./debian.nix { }) ]";
      description = ''
        fetchdocker results to load: a list (e.g. `[ (pkgs.callPackage ./image.nix { }) ]` with hocker-fetch's
        overlay) or an attribute set of them, as `pkgs.importDockerLock ./images.lock.json` returns.
        Anything else (a dockerTools image, a tarball) is refused when the system is evaluated.
      '';
    };
    backend = lib.mkOption {
      type = lib.types.nullOr (lib.types.enum [ "docker" "podman" ]);
      default = null;
      description = ''
        The container engine to load the images into; null means docker if
        `virtualisation.docker.enable`, else podman. The chosen engine is enabled (with mkDefault).
      '';
    };
    registryCredentialsFile = lib.mkOption {
      type = lib.types.nullOr secretPath;
      default = null;
      example = "/run/secrets/registry";
      description = ''
        A file with registry credentials for the fetchers (`DOCKER_USER=...` and `DOCKER_PASS=...`, or
        `DOCKER_TOKEN=...`), given as a string so that it never enters the Nix store. It becomes an
        `EnvironmentFile` of nix-daemon.service: the daemon reads it as root at start (keep it root-only,
        0600), and fixed-output builds get the variables through their `impureEnvVars`; no sandbox path or
        file permission is involved, and a missing file is ignored. Restart nix-daemon after changing its
        contents. Works without `enable`.

        Every user allowed to build on this daemon can use these credentials: any fixed-output derivation
        that lists these variables in `impureEnvVars` receives them and can send them anywhere.
      '';
    };
    mirrors = lib.mkOption {
      type = lib.types.nullOr registriesConfType;
      default = null;
      example = lib.literalExpression ''
        { registry = [ { prefix = "docker.io"; location = "registry-1.docker.io";
                         mirror = [ { location = "mirror.corp:5000"; pull-from-mirror = "digest-only"; } ]; } ]; }
      '';
      description = ''
        Registry mirrors (pull-through caches) for every fetchDocker* build on this machine's nix-daemon, in
        containers-registries.conf(5) v2 form: an attribute set (written as TOML into the store) or a
        registries.conf file in the store; to reuse what podman and skopeo read, give
        `config.environment.etc."containers/registries.conf".source`. The daemon gets
        `CONTAINERS_REGISTRIES_CONF` pointing at the file, and the file is added to
        `nix.settings.extra-sandbox-paths` so the sandboxed builders can read it. A mirror only changes where
        the (digest-verified) bytes come from: no store path changes, and the origin is tried after the
        mirrors. A `mirrors` argument of the fetchers themselves (nix/default.nix, the overlay's
        `hocker-fetch-mirrors`) wins over this. A change is a new store file, so nix.conf changes and the
        switch restarts nix-daemon (its restartTriggers). Works without `enable`.
      '';
    };
  };

  config = lib.mkMerge [
    (lib.mkIf (cfg.registryCredentialsFile != null) {
      # "-": a missing file must not keep the nix-daemon (and with it nixos-rebuild) from starting.
      systemd.services.nix-daemon.serviceConfig.EnvironmentFile = [ "-${cfg.registryCredentialsFile}" ];
    })

    (lib.mkIf (cfg.mirrors != null) {
      # Mirror URLs are not secret: the file is in the store, which the sandbox shows once it is listed.
      systemd.services.nix-daemon.environment.CONTAINERS_REGISTRIES_CONF = registriesConf;
      nix.settings.extra-sandbox-paths = [ registriesConf ];
    })

    (lib.mkIf (cfg.enable && imageList != [ ]) {
      # As virtualisation.oci-containers does; mkDefault so that an explicit `false` wins and is reported.
      # (docker only when chosen explicitly: the automatic choice already depends on virtualisation.docker.enable)
      virtualisation.podman.enable = lib.mkIf (backend == "podman") (lib.mkDefault true);
      virtualisation.docker.enable = lib.mkIf (cfg.backend == "docker") (lib.mkDefault true);
      assertions = [{
        assertion = config.virtualisation.${backend}.enable;
        message = "services.hocker-images loads its images into ${backend}, but virtualisation.${backend}.enable"
          + " is false: enable it, or choose the other engine with services.hocker-images.backend.";
      }];
      systemd.services.hocker-load-images = {
        description = "Load container images pinned with docker2nix";
        wantedBy = [ "multi-user.target" ];
        after = lib.optional (backend == "docker") "docker.service";
        requires = lib.optional (backend == "docker") "docker.service";
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
        script = ''
          set -euo pipefail
          ${lib.concatMapStrings loadOne imageList}
        '';
      };
    })
  ];
}
