"""The native core: the simulator's hot modules compiled to C with mypyc, used in place
of their Python source when a build of exactly this source exists.

Why: a simulated run spends its time in the peer's cores, the effect dispatch and the
simulated world: Python code that is strict-typed already, which is what mypyc needs.
Compiled, the same code runs about 1.4 times as fast, with the same event logs byte for
byte (tests/harness/test_native.py compares them). `quorum-chaos native build` makes a
build; nothing else changes: without one, every module runs as Python.

How a build stays safe to load:
- It is keyed by a digest of every source file of `peer`, `harness` and `faults` and by
  the interpreter's extension suffix. Edit one line and the key changes: a stale build
  is never loaded, the modules simply run as Python until the next build.
- Nothing is written beside the sources. Builds live in a cache dir
  (`QUORUM_CHAOS_NATIVE_DIR`, else `$XDG_CACHE_HOME/quorum-chaos/native`, else
  `~/.cache/quorum-chaos/native`), so an editable checkout never has a `.so` shadowing
  the `.py` a developer edits.
- `QUORUM_CHAOS_NATIVE=0` turns it off.
- `install()` runs from `peer/__init__`, which every process of ours imports before any
  compiled module (`harness/__init__` imports `peer` first), so a module is never loaded
  once as Python and once compiled. It never raises: a build it cannot use is reported
  by `state()` and ignored.

It lives in `peer` because `peer` is the package imported first; it reads files but
starts no process (the build is `harness.native`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader, ModuleSpec
from importlib.util import spec_from_file_location
from pathlib import Path
from types import ModuleType


def _inert_mypyc_attr(*_names: object, **_values: object) -> Callable[[type], type]:
    return lambda cls: cls


# The compiled modules import the decorator from here. It informs mypyc's compiler only
# (mypy resolves this name to mypy_extensions'); at run time it does nothing.
try:
    from mypy_extensions import mypyc_attr as mypyc_attr
except ImportError:  # the peer runs with `python -S`: no site-packages, stdlib only
    mypyc_attr = _inert_mypyc_attr  # type: ignore[assignment]

# The compiled modules: everything on the per-message path of a simulated run, and the
# checker. Not `harness.events`: compiled with `Event` a plain class, its reader was
# slower (154 -> 250 ms for a 120 s run: generic attribute stores); with `Event` native,
# faster (140 -> 114 ms) but stricter than Python on bad logs (a harness event whose
# "sid" is a string would raise a TypeError instead of being read). Nor the adapters
# that wait on sockets (nothing to gain). One difference shows, on input the types
# already rule out: compiled code refuses a value of the wrong type with its own
# TypeError (a txn whose key is an int) where Python goes on to the check that names it
# with a ValueError (tests/peer/test_records.py).
NATIVE_MODULES: tuple[str, ...] = (
    "peer.domain",
    "peer.messages",
    "peer.effects",
    "peer.election",
    "peer.replication",
    "peer.effect_dispatch",
    "peer.records",
    "peer.storage",
    "harness.sim.world",
    "harness.sim.disk",
    "harness.checker",
)
GROUP = "quorum_chaos_native"  # mypyc's shared library is `<GROUP>__mypyc`
SHARED_LIB = f"{GROUP}__mypyc"
MANIFEST = "manifest.json"
SOURCE_PACKAGES = ("peer", "harness", "faults")
ENV_SWITCH = "QUORUM_CHAOS_NATIVE"
ENV_DIR = "QUORUM_CHAOS_NATIVE_DIR"
# The interpreter's file suffix for extension modules, its ABI in the name (sysconfig's
# EXT_SUFFIX; read from importlib, which is loaded anyway, not from sysconfig, whose
# data module every peer start would then load).
EXT_SUFFIX = EXTENSION_SUFFIXES[0]


def source_root() -> Path:
    """The directory holding the `peer`, `harness` and `faults` packages."""
    return Path(__file__).resolve().parent.parent


def source_files(root: Path) -> list[Path]:
    return sorted(p for pkg in SOURCE_PACKAGES for p in (root / pkg).rglob("*.py"))


def build_key(root: Path) -> str:
    """What a build must match: the bytes of every source file, by path, and the
    interpreter's ABI."""
    digest = hashlib.sha256()
    digest.update(f"{EXT_SUFFIX}\0".encode())
    for path in source_files(root):
        digest.update(f"{path.relative_to(root).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def cache_root() -> Path:
    named = os.environ.get(ENV_DIR)
    if named:
        return Path(named)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "quorum-chaos" / "native"


def module_file(name: str) -> str:
    """Where a compiled module (or the shared library) lies in a build dir, relative
    to it."""
    return name.replace(".", "/") + EXT_SUFFIX


@dataclass(frozen=True, slots=True)
class NativeState:
    """Whether this process runs the native core, and why (or why not)."""

    active: bool
    reason: str
    build_dir: Path | None = None


class NativeFinder(MetaPathFinder):
    """Serves the compiled modules of one build, and only those."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = ExtensionFileLoader(fullname, str(file))
        return spec_from_file_location(fullname, file, loader=loader)


_state = NativeState(active=False, reason="not looked for yet")


def state() -> NativeState:
    return _state


def read_manifest(build: Path) -> dict[str, Path]:
    """The module -> file map of a finished build; ValueError naming what is wrong."""
    try:
        manifest = json.loads((build / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{build / MANIFEST}: unreadable: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("modules") != list(NATIVE_MODULES):
        raise ValueError(f"{build / MANIFEST}: not a build of {', '.join(NATIVE_MODULES)}")
    files = {name: build / module_file(name) for name in (*NATIVE_MODULES, SHARED_LIB)}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        raise ValueError(f"{build}: missing {', '.join(missing)}")
    return files


def install() -> NativeState:
    """Load the compiled modules from now on, if a build of this source exists."""
    global _state
    if _state.active:
        return _state
    if os.environ.get(ENV_SWITCH, "1") == "0":
        _state = NativeState(active=False, reason=f"turned off by {ENV_SWITCH}=0")
        return _state
    try:
        root = cache_root()
        if not root.is_dir():  # the common case when nothing was ever built: no hashing
            _state = NativeState(active=False, reason=f"no build in {root}")
            return _state
        build = root / build_key(source_root())
        if not build.is_dir():
            _state = NativeState(False, f"no build of this source in {root}", build)
            return _state
        files = read_manifest(build)
    except RuntimeError as exc:  # Path.home(): no HOME and no passwd entry
        _state = NativeState(active=False, reason=f"no cache dir: {exc}")
        return _state
    except (OSError, ValueError) as exc:
        _state = NativeState(active=False, reason=f"build not used: {exc}")
        return _state
    already = [name for name in NATIVE_MODULES if name in sys.modules]
    if already:
        why = f"imported as Python before the native core: {', '.join(already)}"
        _state = NativeState(False, why, build)
        return _state
    sys.meta_path.insert(0, NativeFinder(files))
    _state = NativeState(active=True, reason="compiled modules in use", build_dir=build)
    return _state


def loaded() -> list[str]:
    """The native modules this process has imported compiled (their file is a library)."""
    return [
        name
        for name in NATIVE_MODULES
        if str(getattr(sys.modules.get(name), "__file__", "")).endswith(EXT_SUFFIX)
    ]
