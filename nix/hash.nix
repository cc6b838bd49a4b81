# sha256 digests and Nix hashes: the hex of a registry digest, and a Nix hash decoded back to the digest it is.
let
  stripDigest = d: let m = builtins.match "sha256:([0-9a-f]{64})" d; in if m == null then d else builtins.head m;
  checkHex = what: hex:
    if builtins.match "[0-9a-f]{64}" hex == null
    then throw "hocker-fetch: ${what} must be sha256:<64 hex digits> or 64 hex digits, not '${hex}'"
    else hex;

  # -- a sha256 Nix hash back to the hex digest (nixpkgs' lib has no decoder) -------------------------------
  # hocker-era files give the config only by its Nix hash, which is the config digest itself (the hash of a flat
  # fixed-output file is the sha256 of its bytes): decoding it lets their config be fetched by digest too.
  # Takes Nix base32 (52 characters, what hocker wrote), 64 hex digits, SRI `sha256-<base64>`, and
  # `sha256:<base32 or hex>`; anything else (or an invalid string) is null.
  charIndex = chars: builtins.listToAttrs
    (builtins.genList (i: { name = builtins.substring i 1 chars; value = i; }) (builtins.stringLength chars));
  base32Index = charIndex "0123456789abcdfghijklmnpqrsvwxyz";
  base64Index = charIndex "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  hexDigits = "0123456789abcdef";
  pow2 = [ 1 2 4 8 16 32 64 128 ];
  bytesToHex = bytes: builtins.concatStringsSep "" (map (b:
    builtins.substring (b / 16) 1 hexDigits + builtins.substring (b - b / 16 * 16) 1 hexDigits) bytes);
  chars = s: builtins.genList (i: builtins.substring i 1 s) (builtins.stringLength s);

  # Nix base32: character i (from the left) holds bits (51 - i) * 5 ... + 4 of the 32 bytes, little-endian.
  nixBase32ToHex = s:
    let
      values = map (c: base32Index.${c} or null) (chars s);
      bit = b:
        let v = builtins.elemAt values (51 - b / 5); k = b - b / 5 * 5;
        in (v / builtins.elemAt [ 1 2 4 8 16 ] k) - (v / builtins.elemAt [ 2 4 8 16 32 ] k) * 2;
      byte = j: builtins.foldl' (acc: k: acc + bit (8 * j + k) * builtins.elemAt pow2 k) 0 (builtins.genList (k: k) 8);
    in
    # the first character holds bit 255 and four bits beyond the hash, which must be zero
    if builtins.length values != 52 || builtins.elem null values || builtins.head values > 1 then null
    else bytesToHex (builtins.genList byte 32);

  # SRI base64 (44 characters, one `=`): big-endian 6-bit groups, four characters to three bytes.
  base64ToHex = s:
    let
      values = map (c: if c == "=" then 0 else base64Index.${c} or null) (chars s);
      group = g: builtins.foldl' (acc: i: acc * 64 + builtins.elemAt values (4 * g + i)) 0 [ 0 1 2 3 ];
      bytes = builtins.concatLists (builtins.genList (g:
        let n = group g; in [ (n / 65536) (n / 256 - n / 65536 * 256) (n - n / 256 * 256) ]) 11);
    in
    if builtins.match "[A-Za-z0-9+/]{43}=" s == null || builtins.elem null values then null
    # 33 bytes decoded; the last is padding and must be zero (as must the low 2 bits of the 43rd character)
    else if builtins.elemAt bytes 32 != 0 then null
    else bytesToHex (builtins.genList (builtins.elemAt bytes) 32);

  sha256ToHex = h:
    let
      sri = builtins.match "sha256-(.*)" h;
      prefixed = builtins.match "sha256:(.*)" h;
      bare = if prefixed != null then builtins.head prefixed else h;
    in
    if h == null then null
    else if sri != null then base64ToHex (builtins.head sri)
    else if builtins.match "[0-9a-f]{64}" bare != null then bare
    else nixBase32ToHex bare;
in
{
  inherit stripDigest checkHex sha256ToHex;
}
