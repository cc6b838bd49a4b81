# nixpkgs overlay: the hocker-fetch package and its Nix functions, hocker's names.
#
#   pkgs = import <nixpkgs> { overlays = [ (import ./overlay.nix) ]; };
#   image = pkgs.callPackage ./debian.nix { };      # a file written by docker2nix
#   images = pkgs.importDockerLock ./images.lock.json; # a file written by hocker-lock: images.<name>
#
# Mirrors for the fetchers (nix/default.nix's `mirrors`: a registries.conf attribute set or file), in one place,
# from any overlay of yours (before or after this one):
#   (final: prev: { hocker-fetch-mirrors = { registry = [ { prefix = "docker.io"; location = "registry-1.docker.io";
#                     mirror = [ { location = "mirror.corp:5000"; } ]; } ]; }; })
final: prev:
let
  # The fetchers run on the machine doing the build.
  # (by our own attribute name: an overlay that puts nixpkgs' Haskell `hocker` back does not change the fetchers)
  hockerForBuild = final.buildPackages.hocker-fetch;
  fetchers = import ./nix/default.nix {
    hocker = hockerForBuild;
    cacert = final.buildPackages.cacert;
    system = final.buildPackages.stdenv.hostPlatform.system;
    python = "${hockerForBuild}/libexec/hocker-fetch/python";
    shell = "${final.buildPackages.bash}/bin/bash";
    # compositeImage.sh runs where the image is loaded (the NixOS machine, at boot): the host package set's.
    runtimePython = "${final.hocker-fetch}/libexec/hocker-fetch/python";
    runtimeShell = "${final.bash}/bin/bash";
    mirrors = final.hocker-fetch-mirrors;
  };
in
{
  hocker-fetch = final.callPackage ./nix/package.nix { };
  # The name this overlay used first (it shadows nixpkgs' Haskell hocker, as before); use hocker-fetch.
  hocker = final.hocker-fetch;
  # null: the builders' CONTAINERS_REGISTRIES_CONF (e.g. from the NixOS option services.hocker-images.mirrors)
  hocker-fetch-mirrors = prev.hocker-fetch-mirrors or null;
  # Overridable like nixpkgs' fetchers: (fetchDockerLayer { ... }).override { layerDigest = ...; }
  fetchDockerConfig = final.lib.makeOverridable fetchers.fetchDockerConfig;
  fetchDockerLayer = final.lib.makeOverridable fetchers.fetchDockerLayer;
  fetchDockerManifest = final.lib.makeOverridable fetchers.fetchDockerManifest;
  fetchdocker = final.lib.makeOverridable fetchers.fetchdocker;
  # importDockerLock ./images.lock.json: { <entry> = fetchdocker result; } for the images' (host) platform
  importDockerLock = fetchers.importDockerLockFor final.stdenv.hostPlatform.system;
}
