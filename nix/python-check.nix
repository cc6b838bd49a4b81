# Shell for every builder's start: the interpreter it is about to run must be executable by the build user.
let
  # The interpreter (named by the derivation attribute `var`) must be executable by the build user. Under a
  # nix-daemon a virtualenv under /root or a home directory is not, and the shell then fails with its own
  # "30: exec: ...: Permission denied" (exit 126) that names no cause: one line with the fix instead, before the
  # builder starts. Only shell builtins: no PATH.
  pythonCheck = var: ''
    if [ ! -x "''${${var}:-}" ]; then
      uid=; name=
      while read -r k v rest; do if [ "$k" = Uid: ]; then uid=$v; fi; done < /proc/self/status 2>/dev/null
      while IFS=: read -r n x i rest; do if [ "$i" = "$uid" ]; then name=$n; fi; done < /etc/passwd 2>/dev/null
      echo "hocker-fetch: the build user ''${name:-?} (uid ''${uid:-?}) cannot run the interpreter ''${${var}}: install hocker-fetch where the build users can read it (a virtualenv made from /usr/bin/python3 outside /root and /home, e.g. under /opt, mode 0755) and list it and its Python in the nix-daemon's extra-sandbox-paths, or use the flake's or overlay's package (docs/nix.md)" >&2
      exit 126
    fi
  '';
in
pythonCheck
