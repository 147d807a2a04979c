"""``save(path, tree)`` and ``load(path)``: pytrees of arrays in an ``.npz`` file, no pickle.

The file is an ordinary ``.npz`` that ``numpy.load(path, allow_pickle=False)`` opens: one
plain array per leaf, named ``leaf_0``, ``leaf_1`` … in ``tree_util.tree_flatten`` order,
and an entry ``__functrace_tree__`` holding the tree structure as UTF-8 JSON text in a
``uint8`` array.

What round-trips:

- containers: tuples, lists, dicts with ``str`` keys, ``None`` and namedtuples. A namedtuple
  comes back as a namedtuple of the same name and fields, made afresh by ``load`` (loading
  never imports or runs code), so it equals the saved one but is not of the saved class;
  ``MyTuple(*loaded)`` converts it back. Other classes registered as pytree nodes are
  refused with a ``TypeError``: save their children instead.
- leaves: arrays of bool, integer, float or complex dtype, shape and dtype exact (0-d
  included). NumPy scalars come back as 0-d arrays, and Python scalars too, as NumPy types
  them (``int`` -> int64, ``float`` -> float64, ``bool`` -> bool).

``save`` writes a temporary file in the target's directory and renames it over the target,
so a crash mid-save leaves the previous file intact. ``load`` never unpickles, and raises
``ValueError`` for a truncated, corrupt or foreign file.

>>> import os, tempfile, numpy as np
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "params.npz")
>>> save(path, {"w": np.ones((2, 2), np.float32), "b": (np.int32(3), None)})
>>> load(path)
{'b': (array(3, dtype=int32), None), 'w': array([[1., 1.],
       [1., 1.]], dtype=float32)}
>>> tmp.cleanup()
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from functrace import tree_util

__all__ = ["load", "save"]

TREE_KEY = "__functrace_tree__"
_FORMAT = "functrace.save"
_VERSION = 1
_LEAF_KINDS = "biufc"


# --- save -------------------------------------------------------------------------------------


def _encode(treedef: tree_util.PyTreeDef) -> Any:
    """A structure as JSON data: ``"*"`` for a leaf, else a dict naming the node type."""
    t = treedef.node_type
    if t is None:
        return "*"
    children = [_encode(c) for c in treedef.children]
    if t is type(None):
        return {"type": "None"}
    if t is tuple or t is list:
        return {"type": t.__name__, "children": children}
    if t is dict:
        bad = [k for k in treedef.aux if not isinstance(k, str)]
        if bad:
            raise TypeError(f"save: dict keys must be str to be saved, got {bad[0]!r}")
        return {"type": "dict", "keys": list(treedef.aux), "children": children}
    if issubclass(t, tuple) and hasattr(t, "_fields"):
        return {"type": "namedtuple", "name": t.__name__, "fields": list(t._fields), "children": children}
    raise TypeError(
        f"save: cannot save a {t.__name__} node: only tuples, lists, dicts with str keys, "
        "namedtuples and None are saved as containers; save its children (a dict or tuple) instead"
    )


def _leaf_array(leaf: Any, index: int) -> np.ndarray:
    arr = np.asarray(leaf)
    if arr.dtype.kind not in _LEAF_KINDS:
        raise TypeError(
            f"save: leaf {index} ({type(leaf).__name__}) has dtype {arr.dtype}; "
            "only bool, integer, float and complex arrays can be saved"
        )
    return arr


def save(path: str | os.PathLike, tree: Any) -> None:
    """Write the pytree ``tree`` of arrays to the ``.npz`` file ``path`` (exactly that name).

    The write is atomic: the previous file at ``path`` stays intact until the new one is
    complete. See the module docstring for what can be saved.

    >>> import os, tempfile, numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "state.npz")
    >>> save(path, [np.arange(3), 2.5])
    >>> sorted(np.load(path, allow_pickle=False).files)
    ['__functrace_tree__', 'leaf_0', 'leaf_1']
    >>> tmp.cleanup()
    """
    leaves, treedef = tree_util.tree_flatten(tree)
    header = {"format": _FORMAT, "version": _VERSION, "tree": _encode(treedef)}
    arrays = {f"leaf_{i}": _leaf_array(leaf, i) for i, leaf in enumerate(leaves)}
    arrays[TREE_KEY] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, _new_file_mode())  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    _fsync_directory(directory)


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (POSIX); best effort where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- load -------------------------------------------------------------------------------------


class _Corrupt(Exception):
    """Internal: the structure entry is malformed (reported as ``ValueError`` by ``load``)."""


def _children(node: dict, count: int | None = None) -> list:
    children = node.get("children")
    if not isinstance(children, list) or (count is not None and len(children) != count):
        raise _Corrupt(f"bad children in a {node.get('type')} node")
    return children


def _namedtuple_class(node: dict) -> type:
    name, fields = node.get("name"), node.get("fields")
    if not isinstance(name, str) or not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise _Corrupt("bad namedtuple node")
    try:
        return collections.namedtuple(name, fields)
    except (ValueError, TypeError) as e:
        raise _Corrupt(f"bad namedtuple node: {e}") from None


def _decode(node: Any, leaves: list[np.ndarray], position: list[int]) -> Any:
    """Rebuild the tree from its JSON data, taking leaves in order."""
    if node == "*":
        if position[0] >= len(leaves):
            raise _Corrupt("the structure has more leaves than the file")
        position[0] += 1
        return leaves[position[0] - 1]
    if not isinstance(node, dict):
        raise _Corrupt(f"unexpected node {node!r}")
    kind = node.get("type")
    if kind == "None":
        return None
    if kind in ("tuple", "list"):
        children = [_decode(c, leaves, position) for c in _children(node)]
        return tuple(children) if kind == "tuple" else children
    if kind == "dict":
        keys = node.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise _Corrupt("bad dict keys")
        return {k: _decode(c, leaves, position) for k, c in zip(keys, _children(node, len(keys)), strict=True)}
    if kind == "namedtuple":
        cls = _namedtuple_class(node)
        return cls(*[_decode(c, leaves, position) for c in _children(node, len(cls._fields))])
    raise _Corrupt(f"unknown node type {kind!r}")


def _read_header(contents: Any) -> dict:
    if TREE_KEY not in contents.files:
        shown = ", ".join(contents.files[:5]) + (" …" if len(contents.files) > 5 else "")
        raise _Corrupt(f"it has no {TREE_KEY} entry (entries: {shown or 'none'}); was it written by functrace.save?")
    raw = contents[TREE_KEY]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _Corrupt(f"its {TREE_KEY} entry is not uint8 text")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _Corrupt(f"its {TREE_KEY} entry is not JSON: {e}") from None
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        raise _Corrupt(f"its {TREE_KEY} entry does not name the format {_FORMAT!r}")
    if header.get("version") != _VERSION:
        raise _Corrupt(f"format version {header.get('version')!r}; this functrace reads version {_VERSION}")
    return header


def _read(file: Any) -> Any:
    if not zipfile.is_zipfile(file):
        raise _Corrupt("it is not a zip archive (an .npz file)")
    file.seek(0)
    with np.load(file, allow_pickle=False) as contents:
        header = _read_header(contents)
        names = [n for n in contents.files if n != TREE_KEY]
        expected = [f"leaf_{i}" for i in range(len(names))]
        if set(names) != set(expected):
            raise _Corrupt(f"unexpected entries {sorted(set(names) - set(expected))}")
        leaves = [contents[name] for name in expected]
    position = [0]
    tree = _decode(header.get("tree"), leaves, position)
    if position[0] != len(leaves):
        raise _Corrupt(f"the file has {len(leaves)} leaves but its structure uses {position[0]}")
    return tree


def load(path: str | os.PathLike) -> Any:
    """Read a pytree written by ``save``; never unpickles.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for one that is not
    a complete ``functrace.save`` file (truncated, corrupt, or another program's).

    >>> import os, tempfile, numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "state.npz")
    >>> save(path, (np.float32(1.5), [True]))
    >>> load(path)
    (array(1.5, dtype=float32), [array(True)])
    >>> tmp.cleanup()
    """
    path = os.fspath(path)
    with open(path, "rb") as file:  # a missing file raises FileNotFoundError here
        try:
            return _read(file)
        except Exception as e:  # damaged zips fail in many ways (zlib, struct, compression, ...)
            raise ValueError(f"load: {path} is not a readable functrace save file: {e}") from e
