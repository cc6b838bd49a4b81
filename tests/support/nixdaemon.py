"""Nix as NixOS runs it: a real nix-daemon (root) with build users and the sandbox on, and builds run by an
unprivileged user through NIX_REMOTE=daemon. The single-user fixture (nixenv.Nix) cannot show what breaks
there: impure variables come from the DAEMON's environment, builders run as `nixbld*` users in a chroot that
holds only the store inputs and `extra-sandbox-paths`, and a file outside them does not exist for the builder.

One daemon per test module (`NixDaemon`), everything under one root in /tmp (mode 0755: the build users and
the unprivileged client must traverse it, which pytest's 0700 tmp does not allow):
  conf/nix.conf   build-users-group = nixbld, sandbox = true (no fallback), substituters = (offline),
                  extra-sandbox-paths = the shell's and the builder's installation (see builder_sandbox_paths)
  store/ state/ log/   NIX_STORE_DIR / NIX_STATE_DIR / NIX_LOG_DIR: nothing touches /nix
  daemon.sock     NIX_DAEMON_SOCKET_PATH (Nix 2.8 reads it in the daemon and in clients)
  work/           generated expressions and build.nix, readable by the client
  secrets/        in extra-sandbox-paths (credentials files for the builders); hidden/ is not

The build users (group `nixbld`, users nixbld1..N) and the client user (`hocker-test`) are created when
missing, as a fresh CI machine may lack them; they are left in place (system accounts, like the ones
`apt-get install nix-bin` creates). The daemon is started and stopped through its own process handle
(`restart(env)` gives it a new environment, e.g. DOCKER_USER/DOCKER_PASS for the impure variables).
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Iterable, Optional

import pytest

from .background import stop_process
from .nixenv import NIX_DIR, VENV

BUILD_GROUP = "nixbld"
BUILD_USERS = 4
CLIENT_USER = "hocker-test"
DAEMON_BIN = shutil.which("nix-daemon") or "/usr/bin/nix-daemon"
#: What a POSIX shell (/bin/sh, the fetchers' default `shell`) needs; /etc/ssl for the system CA bundle.
SYSTEM_SANDBOX_PATHS = ("/bin", "/usr", "/lib", "/lib64", "/etc/ssl")


def ensure_accounts() -> None:
    """The build users' group and members, and the unprivileged client user, created when missing."""
    try:
        grp.getgrnam(BUILD_GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", BUILD_GROUP], check=True, capture_output=True)
    members = set(grp.getgrnam(BUILD_GROUP).gr_mem)
    for i in range(1, BUILD_USERS + 1):
        name = f"{BUILD_GROUP}{i}"
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/var/empty",
                            "--shell", "/usr/sbin/nologin", "--gid", BUILD_GROUP, "--groups", BUILD_GROUP,
                            "--comment", f"Nix build user {i}", name], check=True, capture_output=True)
        else:
            if name not in members:
                subprocess.run(["usermod", "--append", "--groups", BUILD_GROUP, name], check=True,
                               capture_output=True)
    try:
        pwd.getpwnam(CLIENT_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--user-group", CLIENT_USER], check=True,
                       capture_output=True)


def _covering(paths: Iterable[Path]) -> list[str]:
    """The distinct paths, without those already inside another one."""
    out: list[Path] = []
    for p in sorted(set(paths), key=lambda p: len(p.parts)):
        if not any(q == p or q in p.parents for q in out):
            out.append(p)
    return sorted(str(p) for p in out)


def builder_sandbox_paths() -> list[str]:
    """What the builder installation (this project's venv) needs inside the sandbox, exactly what a user
    without nixpkgs lists in extra-sandbox-paths: the venv (console scripts, site-packages), the interpreter
    it links to (its prefix: the binary, libpython, the standard library) and, for an editable install, the
    source tree. Symlinks are resolved: the sandbox mounts the paths, a link to outside would dangle."""
    import hocker_fetch

    python = Path(os.path.realpath(VENV / "bin" / "python"))
    paths = [Path(os.path.realpath(VENV)), Path(os.path.realpath(sys.base_prefix)), python.parent.parent,
             Path(os.path.realpath(hocker_fetch.__file__)).parent.parent]
    system = [Path(p) for p in SYSTEM_SANDBOX_PATHS]
    return [p for p in _covering(paths) if not any(Path(p) == s or s in Path(p).parents for s in system)]


def _world_traversable(path: Path) -> Optional[str]:
    """The builders run as nixbld* users: every mounted path must be readable by them (its own mode;
    the sandbox creates the parent directories itself, so e.g. /root being 0700 does not matter)."""
    st = path.stat()
    if st.st_mode & 0o005 != 0o005:
        return f"{path} is mode {oct(st.st_mode & 0o777)}: the build users cannot read it"
    return None


class NixDaemon:
    """A private nix-daemon (root) plus an unprivileged client that builds through it."""

    def __init__(self, root: Path, extra_sandbox_paths: Iterable[str] = ()) -> None:
        self.root = root
        self.conf = root / "conf"
        self.store = root / "store"
        self.state = root / "state"
        self.logs = root / "log"
        self.socket = root / "daemon.sock"
        self.work = root / "work"
        self.cache = root / "client-cache"
        self.daemon_log = root / "daemon.log"
        self.secrets = root / "secrets"   # in extra-sandbox-paths: credentials files for the builders
        self.hidden = root / "hidden"     # not in them: invisible in the sandbox
        for d in (self.conf, self.work, self.cache, self.state, self.logs, self.secrets, self.hidden):
            d.mkdir(parents=True, mode=0o755)
        client = pwd.getpwnam(CLIENT_USER)
        self.client_uid, self.client_gid = client.pw_uid, client.pw_gid
        os.chown(self.cache, self.client_uid, self.client_gid)
        self.sandbox_paths = [*SYSTEM_SANDBOX_PATHS, *builder_sandbox_paths(), str(self.secrets),
                              *extra_sandbox_paths]
        self.base_sandbox_paths = list(self.sandbox_paths)
        for p in builder_sandbox_paths():
            problem = _world_traversable(Path(p))
            if problem:
                raise RuntimeError(problem)
        (self.conf / "registry.json").write_text('{"version":2,"flakes":[]}')
        (self.conf / "nix.conf").write_text(
            f"build-users-group = {BUILD_GROUP}\n"
            "sandbox = true\nsandbox-fallback = false\n"
            "substituters =\n"
            f"extra-sandbox-paths = {' '.join(self.sandbox_paths)}\n"
            "experimental-features = nix-command flakes\n"
            f"flake-registry = {self.conf / 'registry.json'}\n"
            "max-jobs = 4\n")
        self.env = {
            "NIX_CONF_DIR": str(self.conf),
            "NIX_STORE_DIR": str(self.store),
            "NIX_STATE_DIR": str(self.state),
            "NIX_LOG_DIR": str(self.logs),
            "NIX_DAEMON_SOCKET_PATH": str(self.socket),
        }
        # The client evaluates as the unprivileged user: a copy of nix/ it can read wherever the checkout is.
        shutil.copytree(NIX_DIR, self.work / "nix")
        self.build_nix = self.work / "build.nix"
        self.build_nix.write_text(f"""
{{ file, credentialsFile ? null }}:
let
  fetchers = import {self.work / "nix"}/default.nix {{ hocker = {json.dumps(str(VENV))}; inherit credentialsFile; }};
in import file {{ inherit (fetchers) fetchDockerConfig fetchDockerLayer fetchdocker; }}
""")
        self.proc: Optional[subprocess.Popen] = None
        self._log: Optional[IO[bytes]] = None
        self.daemon_env: dict[str, str] = {}

    # -- the daemon ------------------------------------------------------------------------------
    def start(self, env: Optional[dict[str, str]] = None, timeout: float = 20) -> "NixDaemon":
        """Start the daemon as root with only `env` beyond the basics (its builders' impure variables)."""
        assert self.proc is None, "already running"
        self.daemon_env = dict(env or {})
        full = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/nonexistent-home", **self.env,
                **self.daemon_env}
        if self.socket.exists():
            self.socket.unlink()
        self._log = open(self.daemon_log, "ab")
        # `--store local`: with the default `auto`, a daemon whose state directory is not (yet) writable opens
        # its store through the socket, i.e. connects to itself, once per connection, forking without end.
        self.proc = subprocess.Popen([DAEMON_BIN, "--store", "local"], env=full, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"nix-daemon exited: {self.daemon_log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nix-daemon did not create its socket")
            time.sleep(0.02)
        os.chmod(self.socket, 0o666)
        return self

    def stop(self, timeout: float = 15) -> None:
        """Terminate our own process handle (the daemon ends its connection workers), kill on timeout."""
        if self.proc is not None:
            stop_process(self.proc, timeout)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, env: Optional[dict[str, str]] = None) -> None:
        self.stop()
        self.start(env)

    def set_sandbox_paths(self, paths: Iterable[str]) -> None:
        """extra-sandbox-paths = the basics plus `paths` (e.g. a store path: its closure is mounted, as NixOS's
        nix.settings.extra-sandbox-paths does it); nix.conf is rewritten, the next (re)start reads it."""
        self.sandbox_paths = [*self.base_sandbox_paths, *paths]
        conf = self.conf / "nix.conf"
        lines = [f"extra-sandbox-paths = {' '.join(self.sandbox_paths)}" if line.startswith("extra-sandbox-paths")
                 else line for line in conf.read_text().splitlines()]
        conf.write_text("\n".join(lines) + "\n")

    # -- the unprivileged client -----------------------------------------------------------------
    def client_env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
               "XDG_CACHE_HOME": str(self.cache), "NIX_REMOTE": "daemon", **self.env}
        env.update(extra)
        return env

    def run(self, *args: str, env: Optional[dict[str, str]] = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a command as the unprivileged client user (its own uid/gid, no supplementary groups)."""
        proc = subprocess.run(list(args), capture_output=True, text=True, env=self.client_env(**(env or {})),
                              timeout=timeout, stdin=subprocess.DEVNULL, cwd=self.work,
                              user=self.client_uid, group=self.client_gid, extra_groups=[])
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}\n"
                                 f"daemon log:\n{self.daemon_log.read_text(errors='replace')[-2000:]}")
        return proc

    def build_args(self, file: Path, *extra: str, attr: Optional[str] = None) -> list[str]:
        args = ["nix-build", str(self.build_nix), "--no-out-link", "--arg", "file", str(file), *extra]
        if attr:
            args += ["-A", attr]
        return args

    def build(self, file: Path, *extra: str, attr: Optional[str] = None, env: Optional[dict[str, str]] = None,
              check: bool = True) -> subprocess.CompletedProcess:
        return self.run(*self.build_args(file, *extra, attr=attr), env=env, check=check)

    def build_paths(self, file: Path, *extra: str, **kw) -> list[str]:
        return self.build(file, *extra, **kw).stdout.split()

    def popen_build(self, file: Path, *extra: str, attr: Optional[str] = None) -> subprocess.Popen:
        return subprocess.Popen(self.build_args(file, *extra, attr=attr), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.client_env(), stdin=subprocess.DEVNULL,
                                cwd=self.work, user=self.client_uid, group=self.client_gid, extra_groups=[])

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def nix_daemon() -> Iterable[NixDaemon]:
    for tool in ("nix-build", "nix-daemon", "useradd", "groupadd"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/setup-deps", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("a real nix-daemon with build users needs root (scripts/test runs as root in CI)", pytrace=False)
    ensure_accounts()
    root = Path(tempfile.mkdtemp(prefix="hocker-nixd-", dir="/tmp"))
    os.chmod(root, 0o755)
    d = NixDaemon(root)
    try:
        d.start()
        yield d
    finally:
        d.cleanup()
