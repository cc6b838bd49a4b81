# Registry credentials for the fixed-output builders. Nix sees a file's name only; the builder reads it, and only
# when no impure variable (DOCKER_USER/DOCKER_PASS/DOCKER_TOKEN) carries credentials.
{ credentialsFile }:
let
  # A path string: never copied into the store (the builder reads it when no env var is set). With flakes (pure
  # evaluation) builtins.nixPath is empty: `-I DOCKER_CREDENTIALS=` is not seen there, use `credentialsFile`.
  nixPathCredentials = builtins.filter (e: e.prefix == "DOCKER_CREDENTIALS") builtins.nixPath;
  defaultCredentialsFile =
    if nixPathCredentials != [ ] then (builtins.head nixPathCredentials).path else "/etc/nix-docker-credentials.txt";
  credentials = if credentialsFile != null then toString credentialsFile else defaultCredentialsFile;
  # A file the user named (argument or -I) must be readable in the build; the implicit default only if it exists.
  credentialsExplicit = credentialsFile != null || nixPathCredentials != [ ];

  # Runs a hocker tool (a console script, or the interpreter on hocker_fetch.fetchblob); adds the credentials file
  # only when no impure variable carries credentials.
  # Under a nix-daemon the builder is a build user in the sandbox: a file outside extra-sandbox-paths does not
  # exist there, one not readable by group nixbld cannot be read. A file the user named (credentialsFileExplicit),
  # or one that exists but cannot be read, fails the build with one line (exit 3, as hocker's auth errors)
  # naming the file, the build user and the fix; never a silent anonymous pull. Only shell builtins: no PATH.
  fetchScript = ''
    if [ -z "''${DOCKER_TOKEN:-}''${DOCKER_USER:-}''${DOCKER_PASS:-}" ] && [ -n "''${credentialsFile:-}" ]; then
      if [ -r "$credentialsFile" ]; then
        set -- "$@" --credentials-file "$credentialsFile"
      elif [ -n "''${credentialsFileExplicit:-}" ] || [ -e "$credentialsFile" ]; then
        uid=; name=; host=
        while read -r k v rest; do if [ "$k" = Uid: ]; then uid=$v; fi; done < /proc/self/status 2>/dev/null
        while IFS=: read -r n x i rest; do if [ "$i" = "$uid" ]; then name=$n; fi; done < /etc/passwd 2>/dev/null
        if read -r inner outer rest < /proc/self/uid_map 2>/dev/null && [ "$inner" = "$uid" ] && [ "$outer" != "$uid" ]; then
          host="; uid $outer outside the sandbox"
        fi
        who="build user ''${name:-?} (uid ''${uid:-?}$host)"
        env="or give DOCKER_USER/DOCKER_PASS (or DOCKER_TOKEN) in the nix-daemon's environment"
        # single-user Nix (the builder is you: it owns the store directory, in the sandbox too) gets advice of its own
        if [ -O "''${NIX_STORE:-/nix/store}" ]; then
          who="user ''${name:-?} (uid ''${uid:-?}$host, single-user Nix)"
          env="or give DOCKER_USER/DOCKER_PASS (or DOCKER_TOKEN) in nix-build's environment"
          if [ -e "$credentialsFile" ]; then
            echo "hocker-fetch: the credentials file $credentialsFile is not readable by $who: chmod u+r FILE, $env" >&2
          elif [ -n "$host" ]; then
            echo "hocker-fetch: the credentials file $credentialsFile does not exist in the sandbox ($who): list it in extra-sandbox-paths of nix.conf, $env" >&2
          else
            echo "hocker-fetch: the credentials file $credentialsFile does not exist: check the path given as -I DOCKER_CREDENTIALS=PATH or credentialsFile, $env" >&2
          fi
        elif [ -e "$credentialsFile" ]; then
          echo "hocker-fetch: the credentials file $credentialsFile is not readable by the $who: make it group nixbld, mode 0640 (chgrp nixbld FILE; chmod 0640 FILE), $env" >&2
        else
          echo "hocker-fetch: the credentials file $credentialsFile does not exist in the build ($who): list it in extra-sandbox-paths of the nix-daemon's nix.conf, group nixbld, mode 0640, $env" >&2
        fi
        exit 3
      fi
    fi
    exec "$@" --out "$out"
  '';
in
{
  # what the builder reads: the derivation attributes behind $credentialsFile and $credentialsFileExplicit
  env = {
    credentialsFile = credentials;
    credentialsFileExplicit = credentialsExplicit;
  };
  inherit fetchScript;
}
