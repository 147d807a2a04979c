"""The persistent compile cache: object code on disk, keyed by what it depends on.

An entry is ``<dir>/<key>.ftobj``: a magic line, the SHA-256 of the payload, then
the payload (a JSON header with the entry's metadata, a newline, the object code).
The key (``compile_key``) hashes the optimised IR text, the shapes of the captured
constants, the functrace / llvmlite / LLVM versions, the CPU name and features and
the runtime symbols bound into the JIT. A missing, truncated or corrupt entry is a
miss: the function is compiled again and the entry rewritten (atomically, by
rename). The directory is created with mode 0700.

``config.update("jit_cache_dir", path)`` sets the directory; ``None`` turns the cache
off. The default is ``$XDG_CACHE_HOME/functrace/jit`` (``~/.cache/functrace/jit``);
the environment variable ``FUNCTRACE_JIT_CACHE_DIR`` overrides it (empty: off).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

MAGIC = b"functrace-object-v1\n"


def default_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "functrace", "jit")


def compile_key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def _path(directory: str, key: str) -> str:
    return os.path.join(directory, f"{key}.ftobj")


def get(directory: str | None, key: str) -> tuple[dict, bytes] | None:
    """The cached ``(metadata, object code)``, or None on a miss or a damaged entry."""
    if not directory:
        return None
    try:
        with open(_path(directory, key), "rb") as f:
            data = f.read()
    except OSError:
        return None
    if not data.startswith(MAGIC):
        return None
    digest, _, payload = data[len(MAGIC) :].partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        return None
    header, _, obj = payload.partition(b"\n")
    try:
        meta = json.loads(header)
    except ValueError:
        return None
    if not isinstance(meta, dict) or not obj:
        return None
    return meta, obj


def put(directory: str | None, key: str, meta: dict, obj: bytes) -> None:
    """Store an entry; a cache that cannot be written is skipped, never an error."""
    if not directory:
        return
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        payload = json.dumps(meta, sort_keys=True).encode() + b"\n" + obj
        data = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, _path(directory, key))
    except OSError:
        pass
