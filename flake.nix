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
      # builtins.currentSystem) pass it, or evaluation stops with an error that says so.
      lib = {
        mkFetchers = { hocker, system ? null, ... }@args: import ./nix/default.nix args;
        # The fetchers of the flake's own package for a system (needs nixpkgs).
        fetchersFor = system: { inherit (pkgsFor system) fetchDockerConfig fetchDockerLayer fetchDockerManifest fetchdocker; };
      };

      packages = forAllSystems (system:
        let hocker-fetch = (pkgsFor system).hocker-fetch;
        in { default = hocker-fetch; inherit hocker-fetch; hocker = hocker-fetch; });

      apps = forAllSystems (system:
        let hocker = self.packages.${system}.default;
        in {
          default = { type = "app"; program = "${hocker}/bin/docker2nix"; };
          docker2nix = { type = "app"; program = "${hocker}/bin/docker2nix"; };
          hocker-image = { type = "app"; program = "${hocker}/bin/hocker-image"; };
        });

      nixosModules.default = { ... }: {
        imports = [ ./nix/module.nix ];
        nixpkgs.overlays = [ self.overlays.default ];
      };

      checks = forAllSystems (system: {
        hocker = self.packages.${system}.default;
      });
    };
}
