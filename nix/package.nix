# The hocker-fetch package for nixpkgs (used by overlay.nix and flake.nix).
{ lib, python3Packages, makeWrapper }:
let
  inherit (python3Packages) python;
  deps = with python3Packages; [ requests jinja2 ];
  # Only what the Python build needs: editing the Nix files, tests or docs does not rebuild the package.
  src = lib.cleanSourceWith {
    src = ../.;
    filter = path: type:
      let rel = lib.removePrefix (toString ../. + "/") (toString path);
      in rel == "setup.py" || rel == "setup.cfg" || rel == "README.md" || rel == "LICENSE"
        || rel == "hocker_fetch" || lib.hasPrefix "hocker_fetch/" rel;
  };
in
python3Packages.buildPythonApplication {
  pname = "hocker-fetch";
  version = "0.1.0";
  inherit src;
  format = "setuptools";
  nativeBuildInputs = [ makeWrapper ];
  propagatedBuildInputs = deps;
  # The test suite needs a registry, skopeo and Nix itself: it runs in the project's CI, not in the sandbox.
  doCheck = false;
  pythonImportsCheck = [ "hocker_fetch" "hocker_fetch.nixbuild" ];
  # The interpreter nix/default.nix runs `-m hocker_fetch.nixbuild` with (kept off PATH: not a user-facing python).
  postFixup = ''
    makeWrapper ${python.interpreter} $out/libexec/hocker-fetch/python \
      --prefix PYTHONPATH : "$out/${python.sitePackages}:${python3Packages.makePythonPath deps}"
  '';
  meta = {
    description = "Fetch Docker/OCI registry images without a daemon and pin them for Nix (a Python hocker)";
    license = lib.licenses.asl20;
    mainProgram = "docker2nix";
    platforms = lib.platforms.unix;
  };
}
