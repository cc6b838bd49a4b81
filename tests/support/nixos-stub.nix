# Typed stand-ins, with the real nixpkgs lib.types, for the NixOS options that nix/module.nix (and the flake's
# nixosModules.default) reads or sets. Each is declared as NixOS declares it, as far as the module can tell:
# a wrong type or a misspelt option is an evaluation error here as it would be on a real system.
{ lib, pkgs, ... }:
let
  t = lib.types;
  opt = type: default: lib.mkOption { inherit type default; };
  # systemd's unit option values: scalars, or lists that concatenate across definitions (as in NixOS)
  unitOption = t.oneOf [ t.bool t.int t.str (t.listOf t.str) ];
  service = t.submodule {
    options = {
      description = opt t.str "";
      wantedBy = opt (t.listOf t.str) [ ];
      after = opt (t.listOf t.str) [ ];
      requires = opt (t.listOf t.str) [ ];
      environment = opt (t.attrsOf t.str) { };
      path = opt (t.listOf t.package) [ ];
      serviceConfig = opt (t.attrsOf unitOption) { };
      script = opt t.lines "";
    };
  };
in
{
  options = {
    assertions = opt (t.listOf (t.submodule {
      options.assertion = lib.mkOption { type = t.bool; };
      options.message = lib.mkOption { type = t.str; };
    })) [ ];
    warnings = opt (t.listOf t.str) [ ];
    virtualisation.docker.enable = opt t.bool false;
    virtualisation.docker.package = opt t.package pkgs.docker;
    virtualisation.podman.enable = opt t.bool false;
    virtualisation.podman.package = opt t.package pkgs.podman;
    systemd.services = opt (t.attrsOf service) { };
    systemd.tmpfiles.rules = opt (t.listOf t.str) [ ];
    system.activationScripts = opt (t.attrsOf t.anything) { };
    environment.etc = opt (t.attrsOf t.anything) { };
    nix.settings = opt (t.submodule { freeformType = t.attrsOf t.anything; }) { };
    # as NixOS types it: an overlay is kept as it is (types.anything would wrap and re-merge its result)
    nixpkgs.overlays = opt (t.listOf (lib.mkOptionType {
      name = "nixpkgs-overlay";
      check = lib.isFunction;
      merge = lib.mergeOneOption;
    })) [ ];
    boot.isContainer = opt t.bool false;
    system.stateVersion = opt t.str "";
  };
}
