# NixOS module: load images pinned with docker2nix into docker or podman at boot, and registry credentials for
# the nix-daemon's fetches.
#
#   services.hocker-images = {
#     enable = true;
#     images = [ (pkgs.callPackage ./debian.nix { }) ];   # needs hocker-fetch's overlay
#     registryCredentialsFile = "/run/secrets/registry";  # private registries (a string: never in the store)
#   };
#
# A oneshot unit runs after the container engine; an image whose ID (its config digest) is already loaded is
# skipped, so a reboot costs nothing. The chosen engine is enabled (mkDefault), as oci-containers does. For
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

  loadOne = image: ''
    ${lib.optionalString (image.configDigest or null != null) ''
      if ${engine} image inspect ${image.configDigest} >/dev/null 2>&1; then
        echo ${lib.escapeShellArg "hocker-images: ${image.image} is already loaded"}
      else
    ''}
      echo ${lib.escapeShellArg "hocker-images: loading ${image.image}"}
      ${image}/compositeImage.sh | ${engine} load
    ${lib.optionalString (image.configDigest or null != null) "fi"}
  '';
in
{
  options.services.hocker-images = {
    enable = lib.mkEnableOption "loading container images pinned with docker2nix at boot";
    images = lib.mkOption {
      type = lib.types.listOf fetchdockerResult;
      default = [ ];
      example = lib.literalExpression "[ (pkgs.callPackage ./debian.nix { }) ]";
      description = ''
        fetchdocker results (e.g. `pkgs.callPackage ./image.nix { }` with hocker-fetch's overlay) to load.
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
  };

  config = lib.mkMerge [
    (lib.mkIf (cfg.registryCredentialsFile != null) {
      # "-": a missing file must not keep the nix-daemon (and with it nixos-rebuild) from starting.
      systemd.services.nix-daemon.serviceConfig.EnvironmentFile = [ "-${cfg.registryCredentialsFile}" ];
    })

    (lib.mkIf (cfg.enable && cfg.images != [ ]) {
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
          ${lib.concatMapStrings loadOne cfg.images}
        '';
      };
    })
  ];
}
