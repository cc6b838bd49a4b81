# The hocker-fetch package for nixpkgs (used by overlay.nix and flake.nix).
{ lib, python3Packages, makeWrapper }:
let
  inherit (python3Packages) python;
  # registries.conf (mirrors) is TOML: the standard library reads it from Python 3.11 on, tomli before
  deps = with python3Packages; [ requests jinja2 cryptography ] ++ lib.optional (pythonOlder "3.11") tomli;
  root = ../.;
  # setup.cfg is the one place the version is written (hocker_fetch reads its installed metadata).
  version =
    let m = builtins.match ".*\nversion = ([^\n]+)\n.*" (builtins.readFile ../setup.cfg);
    in if m == null then throw "hocker-fetch: no `version = ...` line in setup.cfg" else builtins.head m;
  # Only what the Python build needs: editing the Nix files, tests or docs does not rebuild the package; and
  # never bytecode caches, editor leftovers or a local setuptools build/ (they would change the source hash).
  wanted = rel: rel == "setup.py" || rel == "setup.cfg" || rel == "README.md" || rel == "LICENSE"
    || rel == "hocker_fetch" || lib.hasPrefix "hocker_fetch/" rel;
  junk = base: base == "__pycache__" || base == "build" || lib.hasSuffix ".pyc" base || lib.hasSuffix "~" base
    || builtins.match "\\..*\\.sw[a-z]" base != null || builtins.match "#.*#" base != null
    || lib.hasPrefix ".#" base || base == ".DS_Store";
  src = lib.cleanSourceWith {
    src = root;
    filter = path: type:
      let rel = lib.removePrefix (toString root + "/") (toString path);
      in wanted rel && !junk (baseNameOf path);
    name = "hocker-fetch-source";
  };
in
python3Packages.buildPythonApplication {
  pname = "hocker-fetch";
  inherit version src;
  pyproject = true;
  build-system = [ python3Packages.setuptools ];
  dependencies = deps;
  nativeBuildInputs = [ makeWrapper ];
  # The test suite needs a registry, skopeo and Nix itself: it runs in the project's CI, not in the sandbox.
  doCheck = false;
  pythonImportsCheck = [ "hocker_fetch" "hocker_fetch.nixbuild" ];
  # The interpreter nix/default.nix runs `-m hocker_fetch.nixbuild` with (kept off PATH: not a user-facing python).
  # `-S`: everything it imports is on PYTHONPATH, so site (and its .pth scans, a user site) only costs start-up in
  # every blob builder; bench case 12 measures the builders this way.
  postFixup = ''
    makeWrapper ${python.interpreter} $out/libexec/hocker-fetch/python --add-flags -S \
      --prefix PYTHONPATH : "$out/${python.sitePackages}:${python3Packages.makePythonPath deps}"
  '';
  # nix/default.nix's default `python` (relative to the package): `mkFetchers { hocker = <this package>; }` works.
  passthru.hockerFetchPython = "libexec/hocker-fetch/python";
  meta = {
    description = "Fetch Docker/OCI registry images without a daemon and pin them for Nix (a Python hocker)";
    license = lib.licenses.asl20;  # LICENSE: Apache License 2.0
    mainProgram = "docker2nix";
    platforms = lib.platforms.unix;
  };
}
