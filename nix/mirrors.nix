# Mirrors (pull-through caches, registries.conf v2) for the fixed-output builders: they change where bytes come
# from, never a store path.
{ mirrors }:
let
  # Mirror URLs are not secret: a file in the store is fine (and the only kind the sandbox shows unasked).
  registriesConf =
    if mirrors == null then null
    else if builtins.isAttrs mirrors && !(mirrors ? outPath)
    then builtins.toFile "registries.conf" ((import ./toml.nix).toTOML mirrors)
    else if builtins.isPath mirrors then builtins.path { path = mirrors; name = "registries.conf"; }
    else if builtins.isString mirrors && builtins.hasContext mirrors then mirrors
    else if builtins.isAttrs mirrors then "${mirrors}"
    else if builtins.isString mirrors && builtins.substring 0 1 mirrors == "/"
    then builtins.path { path = mirrors; name = "registries.conf"; }
    else throw "hocker-fetch: `mirrors` must be a registries.conf attribute set or the absolute path of one, not ${builtins.toJSON mirrors}";

  # The `mirrors` file comes as hockerRegistriesConf, not as CONTAINERS_REGISTRIES_CONF itself: Nix sets every
  # impureEnvVars name after the .drv's own variables (to "" when unset), which would hide it. It wins (it is in
  # the .drv: what was asked for). Else an impure CONTAINERS_REGISTRIES_CONF is used if the builder can read it;
  # one it cannot read (outside the sandbox paths, or not readable by the build user) is one line on stderr and
  # the fetch goes on without mirrors: they only change where verified bytes come from, and the origin is always
  # tried. (Not a failure, unlike a named credentials file: there an anonymous pull would mislead.)
  mirrorsPrelude = ''
    if [ -n "''${hockerRegistriesConf:-}" ]; then
      export CONTAINERS_REGISTRIES_CONF="$hockerRegistriesConf"
    elif [ -z "''${CONTAINERS_REGISTRIES_CONF:-}" ]; then
      unset CONTAINERS_REGISTRIES_CONF
    elif [ ! -r "$CONTAINERS_REGISTRIES_CONF" ]; then
      echo "hocker-fetch: CONTAINERS_REGISTRIES_CONF=$CONTAINERS_REGISTRIES_CONF cannot be read in this build (the sandbox shows only store inputs and extra-sandbox-paths): fetching without mirrors; pass them as nix/default.nix's mirrors argument (or the NixOS option services.hocker-images.mirrors)" >&2
      export CONTAINERS_REGISTRIES_CONF=/dev/null
    fi
  '';
in
{
  inherit registriesConf mirrorsPrelude;
  # what mirrorsPrelude reads: a derivation attribute, only when there is a file
  env = if registriesConf == null then { } else { hockerRegistriesConf = registriesConf; };
}
