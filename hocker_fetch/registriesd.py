"""registries.d (containers-registries.d(5)): which scopes look up sigstore attachments.

Where: --registries.d DIR, else $HOME/.config/containers/registries.d if it exists, else
/etc/containers/registries.d; every `*.yaml` in it, merged (a scope, or `default-docker`, defined in two files
is a fault, as in containers/image). Only `use-sigstore-attachments` matters here; `lookaside` belongs to
simple signing, which this project does not implement.

The files are YAML, read with a small parser of the subset they use: block mappings, comments, plain and
quoted scalars, `{}`. Anything else (lists, flow collections, anchors, block scalars, tabs) is refused with
one line naming the file and line: never misread. This spares a dependency (PyYAML) for files of a few lines.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .errors import UsageError
from .policy import DockerName, scopes

SYSTEM_DIR = "/etc/containers/registries.d"
USER_DIR = ".config/containers/registries.d"


class RegistriesDError(UsageError):
    """A registries.d file is unreadable or malformed (exit 2, one line naming the file)."""


@dataclass(frozen=True)
class RegistriesD:
    """The merged use-sigstore-attachments settings: per docker scope, and `default-docker`'s."""

    docker: Mapping[str, Optional[bool]] = field(default_factory=dict)
    default: Optional[bool] = None

    def use_attachments(self, name: DockerName) -> bool:
        """docker/registries_d.go useSigstoreAttachments: the most specific scope that sets it, else default."""
        for scope in scopes(name):
            if self.docker.get(scope) is not None:
                return bool(self.docker[scope])
        return bool(self.default)


def find_dir(flag: Optional[str], env: Mapping[str, str], system_dir: str = SYSTEM_DIR) -> str:
    if flag:
        return flag
    home = env.get("HOME")
    if home and os.path.exists(os.path.join(home, USER_DIR)):
        return os.path.join(home, USER_DIR)
    return system_dir


def load_dir(directory: str) -> RegistriesD:
    """Every *.yaml of `directory` merged; a missing directory is an empty configuration."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return RegistriesD()
    except OSError as exc:
        raise RegistriesDError(f"registries.d {directory}: {exc.strerror or exc.__class__.__name__}") from None
    docker: dict[str, Optional[bool]] = {}
    origin: dict[str, str] = {}
    default: Optional[bool] = None
    default_from = ""
    for name in names:
        if not name.endswith(".yaml"):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise RegistriesDError(f"{path}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
        doc = parse_yaml(text, path)
        ns_default, ns_docker = _config(doc, path)
        if ns_default is not None:
            if default_from:
                raise RegistriesDError(f'{path}: "default-docker" is defined both in {default_from} and here')
            default, default_from = ns_default.get("use"), path
        for scope, ns in ns_docker.items():
            if scope in origin:
                raise RegistriesDError(f"{path}: docker namespace {scope!r} is defined both in {origin[scope]} "
                                       "and here")
            docker[scope], origin[scope] = ns.get("use"), path
    return RegistriesD(docker, default)


def _config(doc: Any, path: str) -> tuple[Optional[dict[str, Optional[bool]]], dict[str, dict[str, Optional[bool]]]]:
    if doc is None:
        return None, {}
    if not isinstance(doc, dict):
        raise RegistriesDError(f"{path}: a mapping with `docker` and/or `default-docker` expected")
    default = None if doc.get("default-docker") is None else _namespace(doc["default-docker"], path, "default-docker")
    docker_doc = doc.get("docker")
    if docker_doc is not None and not isinstance(docker_doc, dict):
        raise RegistriesDError(f"{path}: `docker` must be a mapping of scopes")
    docker = {str(k): _namespace(v, path, f"docker {k}") for k, v in (docker_doc or {}).items()}
    return default, docker


def _namespace(value: Any, path: str, where: str) -> dict[str, Optional[bool]]:
    if value is None:
        return {"use": None}
    if not isinstance(value, dict):
        raise RegistriesDError(f"{path}: {where}: a mapping expected")
    use = value.get("use-sigstore-attachments")
    if use is None:
        return {"use": None}
    if not isinstance(use, str) or isinstance(use, _Quoted) or use.lower() not in _BOOLS:
        raise RegistriesDError(f"{path}: {where}: use-sigstore-attachments must be true or false, not {use!r}")
    return {"use": _BOOLS[use.lower()]}


class _Quoted(str):
    """A quoted scalar: always a string ('true' is not a boolean, as in YAML)."""


_BOOLS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


# -- the YAML subset -----------------------------------------------------------------------------------------

_KEY_END = re.compile(r":(?:\s|$)")
_QUOTED_KEY = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')\s*:(?:\s|$)""")


def _split(content: str, path: str, number: int) -> tuple[str, str]:
    """`key: value` -> (key as written, value as written, "" when absent)."""
    quoted = _QUOTED_KEY.match(content)
    if quoted:
        return quoted.group(1), content[quoted.end():].strip()
    m = _KEY_END.search(content)
    if not m or m.start() == 0 or content.startswith(("- ", "? ")):
        raise RegistriesDError(f"{path}:{number}: not a `key: value` line this reader supports "
                               "(only block mappings of scalars)")
    return content[:m.start()].rstrip(), content[m.end():].strip()


def parse_yaml(text: str, path: str) -> Any:
    """Block mappings of scalars (strings; the caller interprets booleans); None for an empty document."""
    lines: list[tuple[int, int, str]] = []  # (line number, indent, content)
    for number, raw in enumerate(text.splitlines(), 1):
        content = _strip_comment(raw, path, number)
        if not content.strip() or (content.strip() == "---" and not lines):
            continue
        stripped = content.lstrip(" ")
        if stripped.startswith("\t") or "\t" in content[: len(content) - len(stripped) + 1]:
            raise RegistriesDError(f"{path}:{number}: tabs are not allowed in YAML indentation")
        lines.append((number, len(content) - len(stripped), stripped.rstrip()))
    if not lines:
        return None
    value, end = _mapping(lines, 0, lines[0][1], path)
    if end != len(lines):
        number = lines[end][0]
        raise RegistriesDError(f"{path}:{number}: unexpected indentation")
    return value


def _mapping(lines: list[tuple[int, int, str]], i: int, indent: int, path: str) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while i < len(lines) and lines[i][1] == indent:
        number, _, content = lines[i]
        written_key, raw = _split(content, path, number)
        key = _scalar(written_key, path, number)
        if key in out:
            raise RegistriesDError(f"{path}:{number}: key {key!r} is already defined")
        i += 1
        if raw == "":
            if i < len(lines) and lines[i][1] > indent:
                out[key], i = _mapping(lines, i, lines[i][1], path)
            else:
                out[key] = None
        elif raw == "{}":
            out[key] = {}
        else:
            out[key] = _scalar(raw, path, number)
        if i < len(lines) and lines[i][1] > indent:
            raise RegistriesDError(f"{path}:{lines[i][0]}: unexpected indentation")
    return out, i


def _scalar(raw: str, path: str, number: int) -> str:
    if raw[0] == '"' and raw[-1] == '"' and len(raw) >= 2:
        body = raw[1:-1]
        if not re.fullmatch(r'(?:[^"\\]|\\["\\/nt])*', body):
            raise RegistriesDError(f"{path}:{number}: an escape sequence this reader does not support")
        return _Quoted((body.replace("\\\\", "\0").replace('\\"', '"').replace("\\/", "/").replace("\\n", "\n")
                .replace("\\t", "\t").replace("\0", "\\")))
    if raw[0] == "'" and raw[-1] == "'" and len(raw) >= 2:
        return _Quoted(raw[1:-1].replace("''", "'"))
    if raw[0] in "\"'[]{}&*!|>%@`" or raw.startswith("- ") or raw == "-":
        raise RegistriesDError(f"{path}:{number}: YAML this reader does not support ({raw[:20]!r}): use plain "
                               "`key: value` mappings")
    return raw


def _strip_comment(line: str, path: str, number: int) -> str:
    """The line without its comment: `#` at the start or after whitespace, outside quotes."""
    quote = ""
    for pos, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'" and (pos == 0 or line[pos - 1] in " :"):
            quote = ch
        elif ch == "#" and (pos == 0 or line[pos - 1] in " \t"):
            return line[:pos]
    return line
