"""save/load: exact round trips, a plain .npz without pickle, atomic writes, and clear
errors for unsupported trees and for truncated, corrupt or foreign files."""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from functrace import tree_util
from functrace.serialization import TREE_KEY, load, save
from functrace.testing import strategies as fst

Point = collections.namedtuple("Point", ["x", "y"])


def assert_trees_identical(actual, expected):
    """Same structure (node types and dict keys), and leaves equal in shape, dtype and value."""
    a_leaves, a_def = tree_util.tree_flatten(actual)
    e_leaves, e_def = tree_util.tree_flatten(expected)
    assert repr(a_def) == repr(e_def)
    for a, e in zip(a_leaves, e_leaves, strict=True):
        e = np.asarray(e)
        assert type(a) is np.ndarray
        assert a.shape == e.shape and a.dtype == e.dtype, (a.shape, a.dtype, e.shape, e.dtype)
        np.testing.assert_array_equal(a, e)


ROUND_TRIPS = {
    "dict of arrays": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.float32)},
    "nested": {"layers": [(np.ones((2, 2)), None), ()], "step": np.int64(7), "empty": {}},
    "every dtype": [
        np.array([True, False]),
        np.array([1, -2], np.int32),
        np.array([1, -2], np.int64),
        np.array([0, 2**32 - 1], np.uint32),
        np.array([1.5, -np.inf, np.nan], np.float32),
        np.array([np.pi, 1e-300, np.nan], np.float64),
        np.array([1 + 2j]),
    ],
    "0-d and empty": (np.array(3.5), np.float32(2.0), np.zeros((0, 3), np.int32), np.ones((1, 0, 2))),
    "a single array": np.arange(4),
    "many leaves": [np.full(i % 3, i, np.int32) for i in range(25)],
    "empty containers": ((), [], {}, None),
    "special keys": {"": np.array(1), "a/b": np.array(2), "ü ✓": np.array(3)},
    "bit patterns": np.array([np.finfo(np.float64).tiny / 2, -0.0, np.finfo(np.float64).max]),
}


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_round_trip_is_exact(tmp_path, name):
    tree = ROUND_TRIPS[name]
    save(tmp_path / "t.npz", tree)
    loaded = load(tmp_path / "t.npz")
    assert_trees_identical(loaded, tree)
    for a, e in zip(tree_util.tree_leaves(loaded), tree_util.tree_leaves(tree), strict=True):
        assert np.asarray(a).tobytes() == np.asarray(e).tobytes()  # bit-exact, nan payloads and -0.0 too


@given(fst.pytrees(leaves=fst.arrays(fst.dtypes(), fst.shapes(max_dims=3))))
def test_round_trip_random_trees(tmp_path_factory, tree):
    path = tmp_path_factory.mktemp("h") / "t.npz"
    save(path, tree)
    assert_trees_identical(load(path), tree)


@pytest.mark.parametrize(
    ("scalar", "dtype"), [(3, np.int64), (2.5, np.float64), (True, np.bool_), (np.uint32(4), np.uint32)]
)
def test_scalars_come_back_as_0d_arrays(tmp_path, scalar, dtype):
    save(tmp_path / "s.npz", {"v": scalar})
    out = load(tmp_path / "s.npz")["v"]
    assert type(out) is np.ndarray and out.shape == () and out.dtype == dtype and out == scalar


def test_namedtuples_come_back_by_name_and_fields(tmp_path):
    tree = {"p": Point(np.array(1.0), [np.array(2)])}
    save(tmp_path / "n.npz", tree)
    p = load(tmp_path / "n.npz")["p"]
    assert type(p).__name__ == "Point" and p._fields == ("x", "y")
    assert p.x == 1.0 and p.y[0] == 2
    assert Point(*p) == Point(*tree["p"])


def test_file_is_a_plain_npz_one_array_per_leaf(tmp_path):
    tree = {"b": np.arange(3), "a": (np.float32(1.0), None)}
    save(tmp_path / "p.npz", tree)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as f:
        assert sorted(f.files) == [TREE_KEY, "leaf_0", "leaf_1"]
        np.testing.assert_array_equal(f["leaf_0"], np.float32(1.0))  # tree_flatten order: keys sorted
        np.testing.assert_array_equal(f["leaf_1"], np.arange(3))
        header = json.loads(f[TREE_KEY].tobytes())
    assert header["format"] == "functrace.save" and header["version"] == 1


def test_overwrites_and_accepts_str_paths_with_a_normal_file_mode(tmp_path):
    path = str(tmp_path / "p.npz")
    save(path, [np.zeros(2)])
    save(path, [np.ones(3)])
    assert_trees_identical(load(path), [np.ones(3)])
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["p.npz"]  # no temporary file left behind


# --- what cannot be saved ---------------------------------------------------------------------


@tree_util.register_pytree_node_class
class Box:
    def __init__(self, value):
        self.value = value

    def tree_flatten(self):
        return (self.value,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"w": Box(np.ones(2))}, "cannot save a Box node"),
        ({1: np.ones(2)}, "dict keys must be str"),
        ([np.array(["text"])], "leaf 0 .* dtype <U4"),
        ([np.ones(1), np.array([object()])], "leaf 1 .* dtype object"),
    ],
)
def test_unsupported_trees_raise_type_error_and_write_nothing(tmp_path, tree, message):
    with pytest.raises(TypeError, match=message):
        save(tmp_path / "bad.npz", tree)
    assert os.listdir(tmp_path) == []


# --- atomic writes ----------------------------------------------------------------------------


def _savez_that_crashes(exception):
    def savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half-written")
        raise exception

    return savez


@pytest.mark.parametrize("exception", [OSError("disk full"), KeyboardInterrupt()])
def test_crash_while_writing_keeps_the_previous_file(tmp_path, monkeypatch, exception):
    path = tmp_path / "ckpt.npz"
    save(path, {"w": np.arange(3.0)})
    monkeypatch.setattr(np, "savez", _savez_that_crashes(exception))
    with pytest.raises(type(exception)):
        save(path, {"w": np.zeros(100)})
    monkeypatch.undo()
    assert_trees_identical(load(path), {"w": np.arange(3.0)})
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_crash_before_the_rename_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save(path, [np.int32(1)])

    def replace_that_crashes(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", replace_that_crashes)
    with pytest.raises(OSError, match="power cut"):
        save(path, [np.int32(2)])
    monkeypatch.undo()
    assert_trees_identical(load(path), [np.int32(1)])
    assert os.listdir(tmp_path) == ["ckpt.npz"]


# --- truncated, corrupt and foreign files ---------------------------------------------------


@pytest.fixture
def saved_bytes(tmp_path):
    save(tmp_path / "good.npz", {"w": np.arange(50.0), "b": [np.int32(3), True]})
    return (tmp_path / "good.npz").read_bytes()


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_file_raises_value_error(tmp_path, saved_bytes, fraction):
    path = tmp_path / "cut.npz"
    path.write_bytes(saved_bytes[: int(len(saved_bytes) * fraction)])
    with pytest.raises(ValueError, match="is not a readable functrace save file"):
        load(path)


def test_every_truncation_raises_value_error(tmp_path, saved_bytes):
    path = tmp_path / "cut.npz"
    for end in range(0, len(saved_bytes), 7):
        path.write_bytes(saved_bytes[:end])
        with pytest.raises(ValueError):
            load(path)


def test_flipped_bytes_never_load_silently_wrong_structure(tmp_path, saved_bytes):
    # Zip CRCs catch corrupted data; a corrupted name or header is caught by validation.
    path = tmp_path / "flip.npz"
    for position in range(0, len(saved_bytes), 11):
        data = bytearray(saved_bytes)
        data[position] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            tree = load(path)
        except ValueError:
            continue
        assert tree_util.tree_structure(tree) == tree_util.tree_structure({"w": 0, "b": [0, 0]})


def _write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _header(tree, version=1):
    text = json.dumps({"format": "functrace.save", "version": version, "tree": tree})
    return np.frombuffer(text.encode(), np.uint8)


FOREIGN = {
    "random bytes": lambda p: p.write_bytes(os.urandom(64)),
    "empty file": lambda p: p.write_bytes(b""),
    "npy file": lambda p: p.write_bytes(_npy_bytes(np.arange(3))),
    "foreign npz": lambda p: _write_npz(p, weights=np.ones(3)),
    "zip without npy": lambda p: zipfile.ZipFile(p, "w").close(),
    "header not json": lambda p: _write_npz(p, **{TREE_KEY: np.frombuffer(b"{nope", np.uint8)}),
    "header wrong dtype": lambda p: _write_npz(p, **{TREE_KEY: np.arange(3.0)}),
    "other format": lambda p: _write_npz(p, **{TREE_KEY: np.frombuffer(b'{"format": "x"}', np.uint8)}),
    "future version": lambda p: _write_npz(p, **{TREE_KEY: _header("*", version=2)}, leaf_0=np.ones(1)),
    "too few leaves": lambda p: _write_npz(p, **{TREE_KEY: _header(["*", "*"])}, leaf_0=np.ones(1)),
    "too many leaves": lambda p: _write_npz(p, **{TREE_KEY: _header("*")}, leaf_0=np.ones(1), leaf_1=np.ones(1)),
    "gap in leaves": lambda p: _write_npz(p, **{TREE_KEY: _header(["*", "*"])}, leaf_0=np.ones(1), leaf_2=np.ones(1)),
    "unknown node": lambda p: _write_npz(p, **{TREE_KEY: _header({"type": "set", "children": []})}),
    "bad dict keys": lambda p: _write_npz(p, **{TREE_KEY: _header({"type": "dict", "keys": [1], "children": ["*"]})}),
    "keys and children differ": lambda p: _write_npz(
        p, **{TREE_KEY: _header({"type": "dict", "keys": ["a", "b"], "children": ["*"]})}, leaf_0=np.ones(1)
    ),
    "bad namedtuple": lambda p: _write_npz(
        p, **{TREE_KEY: _header({"type": "namedtuple", "name": "1x", "fields": [], "children": []})}
    ),
}


@pytest.mark.parametrize("name", FOREIGN)
def test_foreign_or_malformed_file_raises_value_error(tmp_path, name):
    path = tmp_path / "f.npz"
    FOREIGN[name](path)
    with pytest.raises(ValueError, match=r"f\.npz is not a readable functrace save file"):
        load(path)


def test_foreign_npz_message_lists_its_entries(tmp_path):
    _write_npz(tmp_path / "f.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match=r"no __functrace_tree__ entry .*weights"):
        load(tmp_path / "f.npz")


class Exploit:
    ran = False

    def __reduce__(self):
        return (Exploit._run, ())

    @staticmethod
    def _run():
        Exploit.ran = True


@pytest.mark.parametrize("where", ["whole file", "leaf"])
def test_load_never_unpickles(tmp_path, where):
    path = tmp_path / "evil.npz"
    if where == "whole file":
        path.write_bytes(pickle.dumps(Exploit()))
    else:
        with open(path, "wb") as f:
            np.savez(f, **{TREE_KEY: _header("*")}, leaf_0=np.array([Exploit()], dtype=object))
    with pytest.raises(ValueError):
        load(path)
    assert not Exploit.ran


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.npz")


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_value_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("b") / "x.npz"
    path.write_bytes(data)
    with pytest.raises(ValueError):
        load(path)
