"""`quorum-chaos native build|status|clean`: make, show and remove builds of the native
core (the loading side, and why it is safe, is `peer.native`).

A build compiles `peer.native.NATIVE_MODULES` with mypyc (part of mypy, a test
dependency) and the machine's C compiler, in a child process (setuptools' `setup` is
made for a process of its own), into a temporary dir of the cache, then renames it to
its key: readers see a whole build or none, and two builds at once do not mix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.procs import SignalGuard, reap, spawn
from peer.native import (
    ENV_SWITCH,
    GROUP,
    MANIFEST,
    NATIVE_MODULES,
    build_key,
    cache_root,
    read_manifest,
    source_root,
    state,
)

# Run by the child: `sys.argv[1]` is a JSON object of what to build and where.
_BUILD_SCRIPT = """
import json, sys
from setuptools import setup
from mypyc.build import mypycify

job = json.loads(sys.argv[1])
setup(
    name="quorum-chaos-native",
    ext_modules=mypycify(
        job["files"], group_name=job["group"], target_dir=job["c_dir"], multi_file=True
    ),
    script_args=[
        "build_ext", "--build-lib", job["lib"], "--build-temp", job["temp"],
        "--parallel", str(job["jobs"]),
    ],
)
"""


class NativeBuildError(Exception):
    """The native core could not be built; the message says why."""


def build(jobs: int | None = None, *, quiet: bool = True) -> Path:
    """Build the native core for the current source, unless it is built already; the
    build dir. The compiler's output is shown only when it fails (or with quiet=False)."""
    root = source_root()
    key = build_key(root)
    cache = cache_root()
    dest = cache / key
    if dest.is_dir():
        read_manifest(dest)  # a broken build is an error, not a reason to rebuild silently
        return dest
    try:
        import mypyc  # noqa: F401
    except ImportError as exc:
        raise NativeBuildError(
            "the native build needs mypyc, which comes with mypy: pip install mypy"
        ) from exc
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=cache) as tmp:
        work = Path(tmp)
        lib = work / "lib"
        job = {
            "files": [str(root / (name.replace(".", "/") + ".py")) for name in NATIVE_MODULES],
            "group": GROUP,
            "c_dir": str(work / "c"),
            "lib": str(lib),
            "temp": str(work / "temp"),
            "jobs": jobs or os.cpu_count() or 1,
        }
        env = dict(os.environ, MYPY_CACHE_DIR=str(work / "mypy-cache"))
        env[ENV_SWITCH] = "0"  # the child imports our packages through mypy only; be sure
        argv = [sys.executable, "-c", _BUILD_SCRIPT, json.dumps(job)]
        log = work / "build.log"
        with log.open("wb") as out:
            # its own process group, reaped with the compilers it started if we are
            # interrupted (Ctrl-C, SIGTERM); cwd: mypy reads the project's configuration
            child = spawn(
                argv,
                stdout=out if quiet else None,
                stderr=subprocess.STDOUT if quiet else None,
                env=env,
                cwd=root,
            )
            try:
                code = child.wait()
            finally:
                reap([child])
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            raise NativeBuildError(f"mypyc build failed (exit {code}):\n{tail}")
        if build_key(root) != key:
            raise NativeBuildError("the source changed during the build; build again")
        manifest = {"key": key, "modules": list(NATIVE_MODULES)}
        (lib / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            read_manifest(lib)  # every module and the shared library are there
        except ValueError as exc:
            raise NativeBuildError(f"mypyc build left something out: {exc}") from exc
        try:
            lib.rename(dest)
        except OSError:
            if not dest.is_dir():  # not another build of the same key finishing first
                raise
            read_manifest(dest)  # that one, checked as ours was
    os.utime(dest)  # the newest build, whatever the rename kept
    prune(cache)
    return dest


# Builds kept in the cache: one per source state, so every edit followed by a build
# leaves one behind (about 4 MB); several checkouts may share the cache.
KEEP_BUILDS = 8


def prune(cache: Path, keep: int = KEEP_BUILDS) -> list[Path]:
    """Remove all but the `keep` most recently built builds; the dirs removed. Temp dirs
    of builds in progress (`.build-*`) are left to their builders."""
    builds = [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]
    builds.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in builds[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return builds[keep:]


def clean() -> list[Path]:
    """Remove every build in the cache; the dirs removed."""
    cache = cache_root()
    if not cache.is_dir():
        return []
    removed = sorted(p for p in cache.iterdir() if p.is_dir())
    for path in removed:
        shutil.rmtree(path)
    return removed


def status_lines() -> list[str]:
    """What `quorum-chaos native status` prints: the cache, this source's key, whether
    it is built and whether this process runs it."""
    key = build_key(source_root())
    cache = cache_root()
    dest = cache / key
    lines = [f"cache: {cache}", f"source key: {key}"]
    if dest.is_dir():
        try:
            read_manifest(dest)
            lines.append(f"built: {dest}")
        except ValueError as exc:
            lines.append(f"built, but unusable: {exc}")
    else:
        lines.append("built: no (quorum-chaos native build)")
    current = state()
    lines.append(f"in use here: {'yes' if current.active else 'no'} ({current.reason})")
    return lines


def native_main(action: str, jobs: int | None) -> int:
    match action:
        case "build":
            # SIGTERM/SIGHUP unwind like Ctrl-C: the compilers are reaped, the temp dir goes
            with SignalGuard.held():
                print(f"native core: {build(jobs, quiet=True)}")
        case "status":
            print("\n".join(status_lines()))
        case "clean":
            removed = clean()
            print(f"removed {len(removed)} build(s) from {cache_root()}")
        case _:
            raise ValueError(f"unknown native action {action!r}")
    return 0
