{
  description = "hocker-fetch: fetch Docker/OCI images without a daemon and pin them for Nix (a Python hocker)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
      pkgsFor = system: import nixpkgs { inherit system; overlays = [ self.overlays.default ]; };
    in
    {
      overlays.default = import ./overlay.nix;

      # The fetchers without nixpkgs: `hocker` is anything with hocker-fetch's bin/ (the package, a virtualenv).
      #   fetchers = hocker-fetch.lib.mkFetchers { hocker = hocker-fetch.packages.${system}.default; };
      #   image = import ./debian.nix { inherit (fetchers) fetchDockerConfig fetchDockerLayer fetchdocker; };
      # `system` defaults to the package's own; for a virtualenv (a path: flakes evaluate purely, without
      # builtins.currentSystem) pass it, or evaluation stops with an error that says so. Every other argument of
      # nix/default.nix passes through, e.g. `mirrors` (a registries.conf attribute set or file; with the
      # overlay: the package set's `hocker-fetch-mirrors`; on NixOS: services.hocker-images.mirrors).
      lib = {
        mkFetchers = { hocker, system ? null, ... }@args: import ./nix/default.nix args;
        # The fetchers of the flake's own package for a system (needs nixpkgs).
        fetchersFor = system: { inherit (pkgsFor system) fetchDockerConfig fetchDockerLayer fetchDockerManifest fetchdocker; };
        # A hocker-lock file's images for a system (needs nixpkgs): lib.importDockerLock "x86_64-linux" ./images.lock.json
        # (without nixpkgs: (lib.mkFetchers { ... }).importDockerLock, for mkFetchers' `system`).
        importDockerLock = system: (pkgsFor system).importDockerLock;
      };

      packages = forAllSystems (system:
        let hocker-fetch = (pkgsFor system).hocker-fetch;
        in { default = hocker-fetch; inherit hocker-fetch; hocker = hocker-fetch; });

      # `nix run .#TOOL` for every console script of setup.cfg; plain `nix run` is docker2nix.
      apps = forAllSystems (system:
        let
          hocker = self.packages.${system}.default;
          app = name: { type = "app"; program = "${hocker}/bin/${name}"; };
          tools = [ "docker2nix" "hocker-manifest" "hocker-config" "hocker-layer" "hocker-image" "hocker-lock"
                    "hocker-tags" ];
        in { default = app "docker2nix"; } // builtins.listToAttrs (map (name: { inherit name; value = app name; }) tools));

      nixosModules.default = { ... }: {
        imports = [ ./nix/module.nix ];
        nixpkgs.overlays = [ self.overlays.default ];
      };

      # `nix flake check` without network: the package builds; the fetchers and the NixOS module evaluate. The
      # example image has placeholder digests: its derivations are instantiated, never built (no fetch).
      checks = forAllSystems (system:
        let
          pkgs = pkgsFor system;
          inherit (nixpkgs) lib;
          digest = c: "sha256:" + builtins.concatStringsSep "" (builtins.genList (_: c) 64);
          pinned = fetchers: fetchers.fetchdocker rec {
            name = "check";
            registry = "https://registry.example/v2/";
            repository = "library";
            imageName = "check";
            tag = "1";
            imageDigest = digest "1";
            imageConfig = fetchers.fetchDockerConfig {
              inherit registry repository imageName tag imageDigest;
              configDigest = digest "2";
            };
            imageLayers = [ (fetchers.fetchDockerLayer { inherit registry repository imageName; layerDigest = digest "3"; }) ];
          };
          # the same image as a hocker-lock file entry, for every system the checks run on (the file's data: pure
          # evaluation may not read a file written by builtins.toFile)
          lock = {
            version = 1;
            images.check = {
              host = "registry.example";
              registry = "https://registry.example/v2/";
              repository = "library/check";
              tag = "1";
              platforms = "all";
              index = null;
              systems = lib.genAttrs systems (s: {
                platform = null;
                manifest = { digest = digest "1"; };
                config = { digest = digest "2"; };
                layers = [ { digest = digest "3"; mediaType = "application/vnd.oci.image.layer.v1.tar+gzip"; } ];
              });
            };
          };
          drvs = image: map (d: builtins.unsafeDiscardStringContext d.drvPath)
            ([ image image.imageConfig image.dockerArchive image.ociLayout image.stream ] ++ image.imageLayers);
          # as nixos-rebuild does: failed assertions are an error listing them
          checked = config:
            let failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
            in if failed == [ ] then config
              else throw "hocker-fetch's NixOS module check:\n${lib.concatMapStrings (m: "- ${m}\n") failed}";
          nixos = (checked (lib.nixosSystem {
            inherit system;
            modules = [
              self.nixosModules.default
              ({ pkgs, ... }: {
                boot.isContainer = true;
                system.stateVersion = "25.05";
                services.hocker-images = {
                  enable = true;
                  images = { check = pinned pkgs; };  # a list works too; importDockerLock gives a set
                  registryCredentialsFile = "/run/secrets/registry";
                };
              })
            ];
          }).config);
        in
        {
          hocker = self.packages.${system}.default;
          # every derivation of a pinned image, through the overlay and through lib.mkFetchers, and of the same
          # image as a lock file entry (pkgs.importDockerLock)
          fetchers = pkgs.runCommand "hocker-fetchers-eval"
            { drvs = builtins.toJSON (drvs (pinned pkgs) ++ drvs (pinned (self.lib.mkFetchers { hocker = self.packages.${system}.default; inherit system; }))
                ++ drvs (pkgs.importDockerLock lock).check); }
            ''printf '%s\n' "$drvs" > "$out"'';
        } // lib.optionalAttrs (lib.hasSuffix "-linux" system) {
          # the module in a NixOS system: assertions hold, the engine is enabled, the unit's script parses, and
          # the credentials file is the daemon's EnvironmentFile (the script's image paths are not built)
          nixos-module = pkgs.runCommand "hocker-nixos-module-eval"
            {
              script = builtins.unsafeDiscardStringContext nixos.systemd.services.hocker-load-images.script;
              podman = lib.boolToString nixos.virtualisation.podman.enable;
              envFile = builtins.toJSON nixos.systemd.services.nix-daemon.serviceConfig.EnvironmentFile;
            }
            ''
              set -eu
              printf '%s\n' "$script" | ${pkgs.bash}/bin/bash -n
              [[ $script == *"/bin/podman load"* ]] || { echo "no podman load in the unit: $script"; exit 1; }
              [[ $podman == true ]] || { echo "virtualisation.podman.enable is not set"; exit 1; }
              [[ $envFile == *'"-/run/secrets/registry"'* ]] || { echo "nix-daemon EnvironmentFile: $envFile"; exit 1; }
              printf '%s\n' "$script" > "$out"
            '';
        });
    };
}
