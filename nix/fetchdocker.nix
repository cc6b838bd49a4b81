# fetchdocker: an image from its blobs, as compositeImage.sh (hocker's), a docker-archive file, an OCI layout and
# a stream. Not fixed-output: these run the builders' interpreter (hocker_fetch.nixbuild) on store paths only.
{ system
, python
, shell
, runtimePython
, runtimeShell
, fetchDockerManifest
}:
let
  inherit (import ./names.nix) hubRegistry familiarName hockerName shorten;
  pythonCheck = import ./python-check.nix;

  fetchdocker =
    { name
    , registry ? hubRegistry
    , repository ? "library"
    , imageName
    , tag ? "latest"
    , imageConfig
    , imageLayers
    , imageDigest ? null
    , indexDigest ? null
    , platform ? null
      # New (docker2nix) files: the familiar name (debian:jessie). hocker-era files (no imageDigest) keep the name
      # nixpkgs' fetchdocker loaded them under (registry-1.docker.io/v2/library/debian:jessie): configurations
      # run it by that name.
    , image ? (if imageDigest == null then "${hockerName registry repository imageName}:${tag}"
               else "${familiarName registry repository imageName}:${tag}")
    , imageManifest ? (if imageDigest == null then null
                       else fetchDockerManifest { inherit registry repository imageName imageDigest; })
    , ...
    }:
    let
      spec = {
        config = { path = "${imageConfig}"; digest = imageConfig.configDigest or null; };
        layers = map (l: { path = "${l}"; digest = l.layerDigest or null; }) imageLayers;
        repoTags = [ image ];
        inherit tag image platform;
        manifest = null;
      };
      build = { name, command, spec }: builtins.derivation ({
        inherit name;
        inherit system;
        # Through the shell so the interpreter gets its full path as argv[0] (Nix passes a bare name, and a
        # virtualenv's python then cannot find its site-packages with PATH unset).
        builder = shell;
        builderPython = python;
        args = [ "-c" (pythonCheck "builderPython" + ''exec "$builderPython" -m hocker_fetch.nixbuild "$0"'') command ];
        imageSpec = builtins.toJSON spec;
        preferLocalBuild = true;
        allowSubstitutes = false;
        PYTHONDONTWRITEBYTECODE = "1";
      } // (if command != "composite" then { } else {
        # written into compositeImage.sh: they run on the machine that loads the image (only this output
        # refers to them, so the archive and the layout do not depend on the host's packages)
        python = runtimePython;
        shell = runtimeShell;
      }));
      composite = build { name = shorten name ""; inherit spec; command = "composite"; };
      dockerArchive = build {
        name = shorten "docker-image-${name}-${tag}" ".tar";
        command = "docker-archive";
        inherit spec;
      };
      ociLayout =
        if imageManifest == null
        then throw "hocker-fetch: ${name}.ociLayout needs the pinned manifest (imageDigest); regenerate with docker2nix"
        else build {
          name = shorten "oci-image-${name}-${tag}" "";
          command = "oci-layout";
          spec = spec // {
            manifest = {
              path = "${imageManifest}";
              digest = imageManifest.imageDigest or imageDigest;
              mediaType = null;
            };
          };
        };
    in
    composite // {
      inherit image imageDigest indexDigest platform imageConfig imageLayers dockerArchive ociLayout;
      configDigest = imageConfig.configDigest or null;
      # hocker's fetchdocker had passthru.image; nixpkgs-style consumers look for passthru
      passthru = { inherit image dockerArchive ociLayout; };
      # An executable that streams the docker-load archive (a symlink to compositeImage.sh): what
      # virtualisation.oci-containers.containers.<name>.imageStream takes, with `image = <result>.image`.
      stream = builtins.derivation {
        name = shorten name "-stream";
        inherit (composite) system;
        inherit python shell;
        builder = shell;
        args = [ "-c" (pythonCheck "python"
          + ''exec "$python" -c 'import os; os.symlink(os.environ["target"], os.environ["out"])' '') ];
        target = "${composite}/compositeImage.sh";
        preferLocalBuild = true;
        allowSubstitutes = false;
      };
    };
in
fetchdocker
