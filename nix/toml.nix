# A TOML writer for registries.conf-shaped attribute sets, without nixpkgs (nix/default.nix and nix/module.nix
# both need it; pkgs.formats.toml would build remarshal, and default.nix takes no package set).
#
#   toTOML { unqualified-search-registries = [ "docker.io" ];
#            registry = [ { prefix = "docker.io"; location = "registry-1.docker.io";
#                           mirror = [ { location = "mirror.corp:5000"; pull-from-mirror = "digest-only"; } ]; } ]; }
#
# Values: strings, bools, integers, lists of those, attribute sets (tables) and non-empty lists of attribute sets
# (arrays of tables, `[[registry]]`, in list order: mirror order matters). Anything else (null, floats, functions,
# mixed lists) is an evaluation error naming the key, not a file that the registries.conf reader refuses later.
let
  bareKey = k: builtins.match "[A-Za-z0-9_-]+" k != null;
  # Nix's JSON string escapes (\" \\ \n \t \b \f \r \u00XX) are all TOML basic-string escapes; DEL, which
  # JSON leaves alone and TOML forbids raw, is escaped too.
  del = builtins.fromJSON ''"\u007f"'';
  string = s: builtins.replaceStrings [ del ] [ "\\u007f" ] (builtins.toJSON s);
  key = k: if bareKey k then k else string k;
  scalar = path: v:
    if builtins.isString v then string v
    else if builtins.isBool v then (if v then "true" else "false")
    else if builtins.isInt v then toString v
    else if builtins.isList v && builtins.all (x: !(builtins.isAttrs x) && !(builtins.isList x)) v
    then "[" + builtins.concatStringsSep ", " (map (scalar path) v) + "]"
    else throw "hocker-fetch: registries.conf: ${path} is a ${builtins.typeOf v}; use strings, booleans, integers, lists of them, attribute sets or lists of attribute sets";

  isTableList = v: builtins.isList v && v != [ ] && builtins.all builtins.isAttrs v;
  isTable = v: builtins.isAttrs v && !(v ? outPath);

  # One table's body: its plain keys first (TOML puts them before any sub-table header), then sub-tables.
  table = prefix: attrs:
    let
      names = builtins.attrNames attrs;
      full = k: if prefix == "" then key k else "${prefix}.${key k}";
      plain = builtins.filter (k: !(isTable attrs.${k}) && !(isTableList attrs.${k})) names;
      subs = builtins.filter (k: isTable attrs.${k} || isTableList attrs.${k}) names;
      line = k: "${key k} = ${scalar (full k) attrs.${k}}\n";
      sub = k:
        let v = attrs.${k}; in
        if isTable v then "\n[${full k}]\n" + table (full k) v
        else builtins.concatStringsSep "" (map (t: "\n[[${full k}]]\n" + table (full k) t) v);
    in
    builtins.concatStringsSep "" (map line plain) + builtins.concatStringsSep "" (map sub subs);
in
{
  toTOML = attrs:
    if isTable attrs then table "" attrs
    else throw "hocker-fetch: registries.conf: the mirror settings must be an attribute set, not a ${builtins.typeOf attrs}";
}
