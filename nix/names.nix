# Names: of registries (Docker Hub's), of the loaded image (familiar, or hocker-era), of store paths.
let
  hubRegistry = "https://registry-1.docker.io/v2/";
  hubHosts = [ "registry-1.docker.io" "docker.io" "index.docker.io" "registry.hub.docker.com" ];

  repoPath = repository: imageName: if repository == "" then imageName else "${repository}/${imageName}";
  sanitize = s: builtins.replaceStrings [ "/" ":" "@" " " ] [ "_" "_" "_" "_" ] s;

  # The loaded image's name: `debian:jessie` on Docker Hub, `host:port/a/b:tag` elsewhere.
  familiarName = registry: repository: imageName:
    let
      m = builtins.match "([a-z]+://)?([^/]+).*" registry;
      host = if m == null then registry else builtins.elemAt m 1;
      path = repoPath repository imageName;
      lib = builtins.match "library/(.*)" path;
    in
    if builtins.elem host hubHosts then (if lib != null then builtins.head lib else path) else "${host}/${path}";

  # nixpkgs' fetchdocker's repository name: the registry URI without its scheme, then repository and image name,
  # slashes collapsed (through a path, as it did): `registry-1.docker.io/v2/library/debian`.
  hockerName = registry: repository: imageName:
    let
      stripScheme = builtins.replaceStrings [ "https://" "http://" ] [ "" "" ];
      path = toString (/. + "/${stripScheme registry}/${repository}/${imageName}");
    in builtins.substring 1 (builtins.stringLength path - 1) path;

  # Store names are at most 211 characters, the .drv's included: 207 for a derivation's name (nixpkgs'
  # sanitizeDerivationName limit). A longer one keeps its start and its suffix around a hash of the whole, so two
  # long names still differ.
  shorten = base: suffix:
    let full = base + suffix;
    in if builtins.stringLength full <= 207 then full
       else "${builtins.substring 0 (207 - 33 - builtins.stringLength suffix) base}-${builtins.substring 0 32 (builtins.hashString "sha256" full)}${suffix}";
in
{
  inherit hubRegistry repoPath sanitize familiarName hockerName shorten;
}
