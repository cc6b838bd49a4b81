# NixOS module: load images pinned with docker2nix into docker or podman at boot.
#
#   services.hocker-images = {
#     enable = true;
#     images = [ (pkgs.callPackage ./debian.nix { }) ];   # needs hocker-fetch's overlay
#   };
#
# A oneshot unit runs after the container engine; an image whose ID (its config digest) is already loaded is
# skipped, so a reboot costs nothing. For virtualisation.oci-containers use `imageFile = image.dockerArchive`.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.hocker-images;
  engine =
    if cfg.backend == "docker" then "${config.virtualisation.docker.package}/bin/docker"
    else "${config.virtualisation.podman.package}/bin/podman";
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
      type = lib.types.listOf lib.types.package;
      default = [ ];
      description = "fetchdocker results (e.g. `pkgs.callPackage ./image.nix { }`) to load.";
    };
    backend = lib.mkOption {
      type = lib.types.enum [ "docker" "podman" ];
      default = if config.virtualisation.docker.enable then "docker" else "podman";
      defaultText = lib.literalExpression ''if config.virtualisation.docker.enable then "docker" else "podman"'';
      description = "The container engine to load the images into.";
    };
  };

  config = lib.mkIf (cfg.enable && cfg.images != [ ]) {
    assertions = [{
      assertion = cfg.backend == "docker" -> config.virtualisation.docker.enable;
      message = "services.hocker-images.backend = \"docker\" needs virtualisation.docker.enable";
    }];
    systemd.services.hocker-load-images = {
      description = "Load container images pinned with docker2nix";
      wantedBy = [ "multi-user.target" ];
      after = lib.optional (cfg.backend == "docker") "docker.service";
      requires = lib.optional (cfg.backend == "docker") "docker.service";
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
      script = ''
        set -euo pipefail
        ${lib.concatMapStrings loadOne cfg.images}
      '';
    };
  };
}
