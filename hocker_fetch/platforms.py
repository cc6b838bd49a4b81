"""Platform resolution: from what a reference names (an index, maybe nested, or one manifest) to the image
manifests of the platforms asked for. One rule for every tool (hocker's four and docker2nix); pure, given a
function that fetches an index entry, so docker2nix can resolve a manifest it was handed without a client.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from .errors import ManifestError
from .manifest import (
    MANIFEST_TYPES,
    Descriptor,
    ImageIndex,
    ImageManifest,
    Parsed,
    Platform,
    check_config_platform,
    select_platform,
)

__all__ = ["resolve_platforms"]


def resolve_platforms(top: Parsed, platforms: Optional[Sequence[Platform]],
                      fetch: Callable[[Descriptor], Parsed], *,
                      fetch_config: Optional[Callable[[ImageManifest], bytes]] = None,
                      accept: Optional[Callable[[Platform], bool]] = None,
                      skipped: Optional[list[str]] = None) -> list[tuple[ImageManifest, Optional[Platform]]]:
    """The one platform-resolution rule of every tool: `top` -> (image manifest, its platform) pairs.

    Each wanted platform is chosen by select_platform (the first match; an entry without `platform` only as
    the index's one candidate); an entry that is itself an index is searched for the same platform (one
    nesting level). `platforms` None means every platform the index lists, once each (duplicates: what
    select_platform picks); `accept` may turn some down, unfetched: they are appended to `skipped`, as are
    entries without platform beside ones with. An index whose one candidate has no platform gives that image.

    An image no index entry states the platform of (a single-platform manifest, an entry without platform)
    comes with platform None, and `fetch` is not called for a single manifest. With `fetch_config` (the
    platforms were asked for explicitly, not defaulted) its config is fetched and must declare the wanted
    platform (ManifestError otherwise, naming both); it then comes with that platform.
    """
    if isinstance(top, ImageManifest):
        if platforms is not None and len(platforms) > 1:
            raise ManifestError(f"{top.digest} is a single-platform image; it cannot be pinned for several "
                                f"platforms ({', '.join(map(str, platforms))})")
        return [_unlisted(top, platforms[0] if platforms else None, fetch_config)]
    if platforms is None:
        return _resolve_all(top, fetch, accept, [] if skipped is None else skipped)
    return [_resolve_one(top, p, fetch, fetch_config) for p in platforms]


def _unlisted(manifest: ImageManifest, wanted: Optional[Platform],
              fetch_config: Optional[Callable[[ImageManifest], bytes]]) -> tuple[ImageManifest, Optional[Platform]]:
    """An image whose platform no index states: checked against its config when `wanted` was explicit."""
    manifest = _checked(manifest)
    if wanted is None or fetch_config is None:
        return manifest, None
    declared = check_config_platform(manifest, fetch_config(manifest), wanted)
    return manifest, declared or wanted.normalized()


def _resolve_one(index: ImageIndex, wanted: Platform, fetch: Callable[[Descriptor], Parsed],
                 fetch_config: Optional[Callable[[ImageManifest], bytes]]) -> tuple[ImageManifest, Optional[Platform]]:
    parent = index
    for _depth in range(2):
        entry = select_platform(parent, wanted)
        child = fetch(entry)
        if isinstance(child, ImageManifest):
            if entry.platform is None:
                return _unlisted(child, wanted, fetch_config)
            return _checked(child), entry.platform
        parent = child
    raise ManifestError(f"index {parent.digest} nests indexes too deeply")


def _resolve_all(index: ImageIndex, fetch: Callable[[Descriptor], Parsed], accept: Optional[Callable[[Platform], bool]],
                 skipped: list[str]) -> list[tuple[ImageManifest, Optional[Platform]]]:
    out: list[tuple[ImageManifest, Optional[Platform]]] = []
    seen: set[Optional[Platform]] = set()

    def expand(idx: ImageIndex, depth: int) -> None:
        listed = idx.platforms()
        bare = [d for d in idx.candidates() if d.platform is None]
        if not listed and len(bare) == 1:
            child = fetch(bare[0])
            if isinstance(child, ImageIndex) and depth == 0:
                expand(child, 1)
            elif isinstance(child, ImageManifest) and None not in seen:
                seen.add(None)
                out.append((_checked(child), None))
            elif isinstance(child, ImageIndex):
                raise ManifestError(f"index {child.digest} nests indexes too deeply")
            return
        skipped.extend(f"{d.digest} (no platform)" for d in bare)
        for p in dict.fromkeys(d.platform for d in listed if d.platform is not None):
            if p in seen:
                continue
            seen.add(p)
            if accept is not None and not accept(p):
                skipped.append(str(p))
                continue
            out.append(_resolve_one(idx, p, fetch, None) if depth == 0 else _leaf(idx, p, fetch))

    expand(index, 0)
    if not out:
        why = f" (skipped: {', '.join(skipped)})" if skipped else ""
        raise ManifestError(f"index {index.digest} offers no usable platform{why}; available: {index.describe()}")
    return out


def _leaf(index: ImageIndex, wanted: Platform, fetch: Callable[[Descriptor], Parsed]) -> tuple[ImageManifest, Platform]:
    """An entry of an index nested in another: it must be an image manifest."""
    entry = select_platform(index, wanted)
    child = fetch(entry)
    if not isinstance(child, ImageManifest):
        raise ManifestError(f"index {index.digest} nests indexes too deeply")
    return _checked(child), wanted


def _checked(manifest: ImageManifest) -> ImageManifest:
    if manifest.media_type not in MANIFEST_TYPES:
        raise ManifestError(f"manifest {manifest.digest}: unsupported manifest type {manifest.media_type}")
    return manifest


