# nix/module.nix (or any NixOS module) evaluated as NixOS would: lib.evalModules with the typed stand-ins of
# nixos-stub.nix; failed assertions are an evaluation error listing their messages, as nixos-rebuild reports them.
{ lib, pkgs, config, module ? ../../nix/module.nix, extraArgs ? { } }:
let
  eval = lib.evalModules {
    modules = [ module ./nixos-stub.nix config ];
    specialArgs = { inherit pkgs; } // extraArgs;
  };
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) eval.config.assertions);
in
if failed != [ ] then throw "\nFailed assertions:\n${lib.concatMapStrings (m: "- ${m}\n") failed}"
else eval.config
