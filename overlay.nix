# nixpkgs overlay: the hocker-fetch package and its Nix functions, hocker's names.
#
#   pkgs = import <nixpkgs> { overlays = [ (import ./overlay.nix) ]; };
#   image = pkgs.callPackage ./debian.nix { };      # a file written by docker2nix
final: prev:
let
  # The fetchers run on the machine doing the build.
  hockerForBuild = final.buildPackages.hocker;
  fetchers = import ./nix/default.nix {
    hocker = hockerForBuild;
    cacert = final.buildPackages.cacert;
    system = final.buildPackages.stdenv.hostPlatform.system;
    python = "${hockerForBuild}/libexec/hocker-fetch/python";
    shell = "${final.buildPackages.bash}/bin/bash";
    # compositeImage.sh runs where the image is loaded (the NixOS machine, at boot): the host package set's.
    runtimePython = "${final.hocker}/libexec/hocker-fetch/python";
    runtimeShell = "${final.bash}/bin/bash";
  };
in
{
  hocker = final.callPackage ./nix/package.nix { };
  # Overridable like nixpkgs' fetchers: (fetchDockerLayer { ... }).override { layerDigest = ...; }
  fetchDockerConfig = final.lib.makeOverridable fetchers.fetchDockerConfig;
  fetchDockerLayer = final.lib.makeOverridable fetchers.fetchDockerLayer;
  fetchDockerManifest = final.lib.makeOverridable fetchers.fetchDockerManifest;
  fetchdocker = final.lib.makeOverridable fetchers.fetchdocker;
}
