"""functrace.random: Threefry known answers, keys, identical numbers in eager / jit / vmap,
distributions (Kolmogorov-Smirnov against exact CDFs, binomial frequency bounds), errors.

Every draw uses a fixed key, so each statistical check is deterministic; the bounds are
set where a correct sampler fails with probability below 1e-6, so a change of stream
cannot make them flake either.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import functrace as ft
import functrace.random as random
from functrace.testing import strategies as fts

ALPHA = 1e-6
SIGMAS = 6.0  # binomial bounds: P(|count - mean| > 6 sd) < 1e-8 (normal approximation)
KEY = random.PRNGKey(1234)
MASK32 = 0xFFFFFFFF


# --- independent references -----------------------------------------------------------------


def threefry_reference(key: tuple[int, int], counter: tuple[int, int]) -> tuple[int, int]:
    """Threefry-2x32, 20 rounds, on Python ints (Random123's spec)."""
    rotations = [13, 15, 26, 6, 17, 29, 16, 24]
    ks = [key[0], key[1], key[0] ^ key[1] ^ 0x1BD11BDA]
    x = [(counter[0] + ks[0]) & MASK32, (counter[1] + ks[1]) & MASK32]
    for rnd in range(20):
        r = rotations[rnd % 8]
        x[0] = (x[0] + x[1]) & MASK32
        x[1] = ((x[1] << r) | (x[1] >> (32 - r))) & MASK32
        x[1] ^= x[0]
        if rnd % 4 == 3:
            inject = rnd // 4 + 1
            x[0] = (x[0] + ks[inject % 3]) & MASK32
            x[1] = (x[1] + ks[(inject + 1) % 3] + inject) & MASK32
    return x[0], x[1]


def ks_statistic(samples: np.ndarray, cdf) -> float:
    x = np.sort(np.asarray(samples, np.float64).ravel())
    f = cdf(x)
    n = x.size
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - f), np.max(f - (i - 1) / n)))


def ks_critical(n: int, alpha: float = ALPHA) -> float:
    """Dvoretzky-Kiefer-Wolfowitz (Massart): P(D_n > t) <= 2 exp(-2 n t^2), for every n."""
    return math.sqrt(math.log(2 / alpha) / (2 * n))


def assert_ks(samples: np.ndarray, cdf) -> None:
    d, crit = ks_statistic(samples, cdf), ks_critical(np.size(samples))
    assert d < crit, f"KS statistic {d:.5f} >= critical value {crit:.5f} (n={np.size(samples)})"


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def normal_cdf(x):
    return 0.5 * _erfc(-np.asarray(x, np.float64) / math.sqrt(2))


def normal_sf(x):
    return 0.5 * _erfc(np.asarray(x, np.float64) / math.sqrt(2))


def assert_binomial(count: int, n: int, p: float) -> None:
    sd = math.sqrt(n * p * (1 - p))
    assert abs(count - n * p) <= SIGMAS * sd + 1, f"count {count} of {n}, expected {n * p:.1f} +- {sd:.1f}"


def _bisect(below) -> float:
    lo, hi = 0.0, 30.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if below(mid) else (lo, mid)
    return 0.5 * (lo + hi)


def erfc_inv_reference(q: float) -> float:
    """x with erfc(x) = q, by bisection on math.erfc (accurate in the far tail)."""
    return _bisect(lambda x: math.erfc(x) > q)


def erf_inv_reference(y: float) -> float:
    """Bisection on math.erf (centre) or math.erfc (tails, with the exact 1 - |y|)."""
    a = abs(float(y))
    if a == 0:
        return 0.0
    x = _bisect(lambda x: math.erf(x) < a) if a < 0.5 else erfc_inv_reference(1.0 - a)
    return math.copysign(x, y)


# --- Threefry and keys -------------------------------------------------------------------------

KNOWN_ANSWERS = [  # Random123 kat_vectors: threefry2x32_20
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key, counter, expected", KNOWN_ANSWERS)
def test_threefry_known_answers(key, counter, expected):
    key = np.array(key, np.uint32)
    eager = random.threefry_2x32(key, *counter)
    assert [int(w) for w in eager] == list(expected)
    words = np.array(counter, np.uint32)
    staged = ft.jit(lambda k, c: random.threefry_2x32(k, c[0], c[1]), backend="interpret")(key, words)
    assert [int(w) for w in staged] == list(expected)
    assert threefry_reference(tuple(int(k) for k in key), counter) == expected  # the reference itself


@given(
    key=st.tuples(st.integers(0, MASK32), st.integers(0, MASK32)),
    counters=st.lists(st.tuples(st.integers(0, MASK32), st.integers(0, MASK32)), min_size=0, max_size=6),
)
def test_threefry_matches_reference_vectorised(key, counters):
    x0 = np.array([c[0] for c in counters], np.uint32)
    x1 = np.array([c[1] for c in counters], np.uint32)
    y0, y1 = random.threefry_2x32(np.array(key, np.uint32), x0, x1)
    assert y0.dtype == y1.dtype == np.uint32 and y0.shape == (len(counters),)
    assert list(zip(y0.tolist(), y1.tolist(), strict=True)) == [threefry_reference(key, c) for c in counters]


@pytest.mark.parametrize(
    "seed, expected",
    [
        (0, (0, 0)),
        (42, (0, 42)),
        (2**32 + 7, (1, 7)),
        (2**64 - 1, (MASK32, MASK32)),
        (-1, (MASK32, MASK32)),
        (-5, (MASK32, MASK32 - 4)),
        (-(2**63), (0x80000000, 0)),
        (np.int64(2**40 + 3), (256, 3)),
    ],
)
def test_prngkey_is_high_and_low_words(seed, expected):
    key = random.PRNGKey(seed)
    assert isinstance(key, np.ndarray) and key.dtype == np.uint32 and key.tolist() == list(expected)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32])
def test_prngkey_of_traced_seed_equals_its_value(dtype):
    seeds = np.array([0, 7, np.iinfo(dtype).max, np.iinfo(dtype).min], dtype)
    expected = np.stack([random.PRNGKey(int(s)) for s in seeds])
    assert np.array_equal(ft.vmap(random.PRNGKey)(seeds), expected)
    jitted = ft.jit(random.PRNGKey, backend="interpret")
    for seed, want in zip(seeds, expected, strict=True):
        got = jitted(seed)
        assert got.dtype == np.uint32 and np.array_equal(got, want)


def test_split_and_fold_in_are_counter_encryptions():
    key = np.array([0x13198A2E, 0x03707344], np.uint32)
    pair = (int(key[0]), int(key[1]))
    keys = random.split(key, 5)
    assert keys.shape == (5, 2) and keys.dtype == np.uint32
    assert [tuple(k) for k in keys.tolist()] == [threefry_reference(pair, (0, i)) for i in range(5)]
    for i in range(5):
        assert np.array_equal(random.fold_in(key, i), keys[i])
    assert np.array_equal(random.fold_in(key, -1), random.fold_in(key, 2**32 - 1))
    assert np.array_equal(random.fold_in(key, np.int32(3)), keys[3])
    assert np.array_equal(ft.vmap(lambda i: random.fold_in(key, i))(np.arange(5, dtype=np.int32)), keys)
    assert np.array_equal(ft.jit(random.fold_in, backend="interpret")(key, np.int64(2**32 + 4)), keys[4])
    assert random.split(key, (2, 3)).shape == (2, 3, 2)
    assert random.split(key, 0).shape == (0, 2)
    # the JAX value for split(PRNGKey(0)) (partitionable Threefry): the first known answer
    assert random.split(random.PRNGKey(0)).tolist() == [[0x6B200159, 0x99BA4EFE], [928981903, 3453687069]]


def test_new_keys_are_distinct():
    keys = random.split(KEY, 1000)
    folded = np.stack([random.fold_in(keys[0], i) for i in range(1, 50)])
    nested = random.split(keys[1], 1000)
    everything = np.concatenate([KEY[None], keys, folded, nested])
    assert len({tuple(k) for k in everything.tolist()}) == len(everything)


# --- the same numbers eagerly, under jit and under vmap -----------------------------------------

LOGITS = np.log(np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]], np.float32))
SAMPLERS = {
    "bits": lambda k: random.bits(k, (3, 2)),
    "split": lambda k: random.split(k, 3),
    "fold_in": lambda k: random.fold_in(k, 11),
    "uniform": lambda k: random.uniform(k, (3, 4)),
    "uniform_f64_bounds": lambda k: random.uniform(k, (2, 3), np.float64, np.array([-1.0, 0.0, 2.0]), 5.0),
    "normal": lambda k: random.normal(k, (7,)),
    "normal_f64": lambda k: random.normal(k, (2, 2), np.float64),
    "truncated_normal": lambda k: random.truncated_normal(k, -1.0, np.array([0.5, 2.0], np.float32), (3, 2)),
    "gumbel": lambda k: random.gumbel(k, (4,)),
    "bernoulli": lambda k: random.bernoulli(k, np.array([0.1, 0.5, 0.9], np.float32)),
    "categorical": lambda k: random.categorical(k, LOGITS, shape=(5, 2)),
    "categorical_axis0": lambda k: random.categorical(k, LOGITS.T, axis=0),
    "randint": lambda k: random.randint(k, (6,), -3, 9),
    "randint_uint32": lambda k: random.randint(k, (4,), 0, 2**32, np.uint32),
    "permutation_n": lambda k: random.permutation(k, 7),
    "permutation_array": lambda k: random.permutation(k, np.arange(12.0).reshape(3, 4), axis=1),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_eager_jit_and_vmap_give_identical_numbers(name):
    f = SAMPLERS[name]
    eager = f(KEY)
    assert isinstance(eager, np.ndarray)
    for other in (f(KEY), ft.jit(f, backend="interpret")(KEY), ft.make_ir(f)(KEY).eval(KEY)):
        other = np.asarray(other)
        assert other.dtype == eager.dtype and other.shape == eager.shape
        assert np.array_equal(other, eager)
    keys = random.split(KEY, 4)
    batched = ft.vmap(f)(keys)
    looped = np.stack([f(k) for k in keys])
    assert batched.dtype == looped.dtype and np.array_equal(batched, looped)
    assert np.array_equal(ft.jit(ft.vmap(f), backend="interpret")(keys), looped)
    assert not np.array_equal(looped[0], looped[1]) or looped[0].size < 3


def test_grad_flows_through_the_bounds_not_the_key():
    loss = lambda lo: random.uniform(KEY, (50,), minval=lo, maxval=3.0).sum()  # noqa: E731
    u = random.uniform(KEY, (50,))
    np.testing.assert_allclose(ft.grad(loss)(np.float32(1.0)), np.sum(1 - u), rtol=1e-5)
    noise = random.normal(KEY, (5,))
    np.testing.assert_array_equal(
        ft.grad(lambda x: (x * random.normal(KEY, (5,))).sum())(np.ones(5, np.float32)), noise
    )


# --- independence ----------------------------------------------------------------------------


def test_split_streams_are_uncorrelated():
    n = 20_000
    keys = np.concatenate([random.split(KEY, 6), random.split(random.split(KEY, 6)[0], 2), KEY[None]])
    keys = np.concatenate([keys, np.stack([random.fold_in(KEY, i) for i in (7, 8)])])
    streams = ft.vmap(lambda k: random.uniform(k, (n,), np.float64))(keys)
    corr = np.corrcoef(streams)
    off_diagonal = corr[~np.eye(len(keys), dtype=bool)]
    assert np.max(np.abs(off_diagonal)) < SIGMAS / math.sqrt(n)
    # neighbouring elements of one stream are uncorrelated too
    s = streams[0]
    assert abs(np.corrcoef(s[:-1], s[1:])[0, 1]) < SIGMAS / math.sqrt(n)


# --- continuous distributions: Kolmogorov-Smirnov --------------------------------------------


@pytest.mark.parametrize(
    "dtype, minval, maxval",
    [(np.float32, 0.0, 1.0), (np.float64, 0.0, 1.0), (np.float32, -3.0, 5.0), (np.float64, 2.0, 2.5)],
)
def test_uniform_ks(dtype, minval, maxval):
    u = random.uniform(KEY, (50_000,), dtype, minval, maxval)
    assert u.dtype == dtype and u.min() >= minval and u.max() < maxval
    assert_ks(u, lambda x: (x - minval) / (maxval - minval))


def test_uniform_float64_uses_52_bits():
    u = random.uniform(KEY, (1000,), np.float64)
    fractional = u * 2.0**52
    assert np.array_equal(fractional, np.floor(fractional))  # on the 2**-52 grid
    assert np.mean(fractional % 2**30 != 0) > 0.99  # and well below the float32 resolution


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_ks(dtype):
    z = random.normal(KEY, (50_000,), dtype)
    assert z.dtype == dtype and np.all(np.isfinite(z))
    assert_ks(z, normal_cdf)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_tails_ks(dtype):
    z = random.normal(random.PRNGKey(7), (2_000_000,), dtype)
    assert np.all(np.isfinite(z))
    for threshold in (3.0, 4.0):
        for tail in (z[z > threshold], -z[z < -threshold]):
            assert_binomial(tail.size, z.size, float(normal_sf(threshold)))
            assert_ks(tail, lambda x, t=threshold: 1 - normal_sf(x) / normal_sf(t))


@pytest.mark.parametrize(
    "lower, upper, dtype",
    [
        (-1.0, 2.0, np.float32),
        (0.5, 3.0, np.float32),
        (-np.inf, 0.0, np.float32),
        (1.5, np.inf, np.float64),
        (-0.1, 0.1, np.float64),
        (2.0, 4.0, np.float64),
    ],
)
def test_truncated_normal_ks(lower, upper, dtype):
    x = random.truncated_normal(KEY, lower, upper, (40_000,), dtype)
    assert x.dtype == dtype and np.all(np.isfinite(x)) and x.min() >= lower and x.max() <= upper
    mass = normal_cdf(upper) - normal_cdf(lower) if lower < 0 else normal_sf(lower) - normal_sf(upper)

    def cdf(v):
        return (normal_cdf(v) - normal_cdf(lower)) / mass if lower < 0 else (normal_sf(lower) - normal_sf(v)) / mass

    assert_ks(x, cdf)


def test_truncated_normal_broadcasts_bounds():
    lower = np.array([[-2.0], [0.0], [1.0]], np.float32)
    upper = np.array([-1.0, 0.5, 3.0, np.inf], np.float32)
    x = random.truncated_normal(KEY, lower, upper)
    assert x.shape == (3, 4) and x.dtype == np.float32
    lo, hi = np.broadcast_to(lower, (3, 4)), np.broadcast_to(upper, (3, 4))
    inside = (x >= np.minimum(lo, hi)) & (x <= hi)
    assert np.all(inside[lo < hi])
    assert random.truncated_normal(KEY, lower, upper, (5, 3, 4)).shape == (5, 3, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gumbel_ks(dtype):
    g = random.gumbel(KEY, (50_000,), dtype)
    assert g.dtype == dtype and np.all(np.isfinite(g))
    assert_ks(g, lambda x: np.exp(-np.exp(-x)))


@pytest.mark.parametrize("dtype, ulps", [(np.float32, 4), (np.float64, 16)])
def test_erf_inv_accuracy_centre_and_tails(dtype, ulps):
    rng = np.random.default_rng(0)
    decades = 7.2 if dtype == np.float32 else 15.9
    y = np.concatenate(
        [rng.uniform(-1, 1, 400), 1 - 10.0 ** -rng.uniform(0, decades, 400), rng.uniform(-1e-4, 1e-4, 20)]
    ).astype(dtype)
    y = y[np.abs(y) < 1]
    got = random._erf_inv(y)
    assert got.dtype == dtype
    want = np.array([erf_inv_reference(v) for v in y])
    np.testing.assert_allclose(got, want, rtol=ulps * np.finfo(dtype).eps, atol=0)
    edges = random._erf_inv(np.array([-1.0, 1.0, 0.0, 1.5, -2.0, np.nan], dtype))
    np.testing.assert_array_equal(edges, [-np.inf, np.inf, 0.0, np.nan, np.nan, np.nan])


@pytest.mark.parametrize("dtype, smallest, ulps", [(np.float32, 2.0**-32, 4), (np.float64, 2.0**-64, 16)])
def test_erf_inv_far_tails_from_the_complement(dtype, smallest, ulps):
    """normal evaluates erf_inv(1 - q) from q itself, down to the smallest q it draws."""
    q = np.geomspace(smallest, 0.5, 500).astype(dtype)  # 1 - q is exact here
    got = random._erf_inv_abs(1 - q, q)
    assert got.dtype == dtype
    want = np.array([erfc_inv_reference(float(v)) for v in q])
    np.testing.assert_allclose(got, want, rtol=ulps * np.finfo(dtype).eps, atol=0)


# --- discrete distributions ------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_bernoulli_frequency(p):
    n = 20_000
    b = random.bernoulli(KEY, p, (n,))
    assert b.dtype == np.bool_ and b.shape == (n,)
    assert_binomial(int(b.sum()), n, p)


def test_bernoulli_shapes_and_dtypes():
    p = np.array([0.0, 0.25, 1.0], np.float64)
    draws = random.bernoulli(KEY, p, (4000, 3))
    assert draws.shape == (4000, 3) and draws.dtype == np.bool_
    assert not draws[:, 0].any() and draws[:, 2].all()
    assert_binomial(int(draws[:, 1].sum()), 4000, 0.25)
    assert random.bernoulli(KEY, p).shape == (3,)
    assert random.bernoulli(KEY).shape == () and random.bernoulli(KEY, 1).dtype == np.bool_


@pytest.mark.parametrize("axis", [-1, 0])
def test_categorical_frequencies(axis):
    probs = np.array([[0.05, 0.25, 0.7, 0.0], [0.4, 0.1, 0.1, 0.4]])
    with np.errstate(divide="ignore"):
        logits = np.log(probs).astype(np.float32)
    if axis == 0:
        logits = logits.T
    n = 10_000
    samples = random.categorical(KEY, logits, axis=axis, shape=(n, 2))
    assert samples.shape == (n, 2) and samples.dtype == np.int32
    for row in range(2):
        for category, p in enumerate(probs[row]):
            assert_binomial(int(np.sum(samples[:, row] == category)), n, p)
    assert random.categorical(KEY, logits, axis=axis).shape == (2,)


@pytest.mark.parametrize(
    "minval, maxval, dtype",
    [(0, 10, np.int32), (-7, -2, np.int32), (-(2**31), 2**31, np.int32), (0, 2**32, np.uint32), (5, 6, np.int64)],
)
def test_randint_range_and_uniformity(minval, maxval, dtype):
    n = 20_000
    x = random.randint(KEY, (n,), minval, maxval, dtype)
    assert x.dtype == dtype and x.shape == (n,)
    assert int(x.min()) >= minval and int(x.max()) < maxval
    span = maxval - minval
    buckets = min(span, 10)  # equal-width buckets of the range
    counts = np.bincount(((x.astype(np.float64) - minval) * buckets // span).astype(np.int64), minlength=buckets)
    for count in counts:
        assert_binomial(int(count), n, 1 / buckets)


def test_randint_bounds_broadcast_clip_and_empty_ranges():
    x = random.randint(KEY, (1000, 3), np.array([0, 10, 5]), np.array([2, 20, 5]))
    assert x.shape == (1000, 3) and x.dtype == np.int32
    assert set(np.unique(x[:, 0]).tolist()) == {0, 1}
    assert x[:, 1].min() >= 10 and x[:, 1].max() < 20 and np.all(x[:, 2] == 5)
    assert np.all(random.randint(KEY, (50,), 3, 1) == 3)
    wide = random.randint(KEY, (2000,), -(2**40), 2**40)  # clipped to the int32 range
    assert wide.dtype == np.int32 and wide.min() < -(2**30) and wide.max() > 2**30
    big = random.randint(KEY, (2000,), 0, 2**40, np.int64)
    assert big.dtype == np.int64 and big.max() > 2**38 and big.min() >= 0


@pytest.mark.parametrize("n", [0, 1, 2, 5, 100])
def test_permutation_is_a_permutation(n):
    perm = random.permutation(KEY, n)
    assert perm.dtype == np.int32 and perm.shape == (n,)
    assert sorted(perm.tolist()) == list(range(n))


def test_permutation_of_arrays_moves_whole_slices():
    x = np.arange(20.0).reshape(4, 5)
    rows = random.permutation(KEY, x)
    assert sorted(rows[:, 0].tolist()) == x[:, 0].tolist() and np.array_equal(rows - rows[:, :1], x - x[:, :1])
    cols = random.permutation(KEY, x, axis=-1)
    assert sorted(cols[0].tolist()) == x[0].tolist() and np.array_equal(cols - cols[:1], x - x[:1])
    assert not np.array_equal(random.permutation(KEY, 50), random.permutation(random.fold_in(KEY, 1), 50))


def test_permutations_of_three_are_uniform():
    keys = random.split(KEY, 6000)
    perms = ft.vmap(lambda k: random.permutation(k, 3))(keys)
    codes = perms[:, 0] * 9 + perms[:, 1] * 3 + perms[:, 2]
    values, counts = np.unique(codes, return_counts=True)
    assert len(values) == 6
    for count in counts:
        assert_binomial(int(count), len(keys), 1 / 6)


# --- shapes and dtypes -----------------------------------------------------------------------


@given(shape=fts.shapes(max_dims=3), dtype=st.sampled_from([np.float32, np.float64]))
def test_float_samplers_shapes_dtypes_ranges(shape, dtype):
    u = random.uniform(KEY, shape, dtype, -2.0, 3.0)
    z = random.normal(KEY, shape, dtype)
    t = random.truncated_normal(KEY, -0.5, 1.5, shape, dtype)
    g = random.gumbel(KEY, shape, dtype)
    for x in (u, z, t, g):
        assert isinstance(x, np.ndarray | np.generic) and x.shape == shape and x.dtype == dtype
        assert np.all(np.isfinite(x))
    assert np.all((u >= -2) & (u < 3)) and np.all((t >= -0.5) & (t <= 1.5))
    jitted = ft.jit(lambda k: random.normal(k, shape, dtype), backend="interpret")(KEY)
    assert np.array_equal(jitted, z)


@given(shape=fts.shapes(max_dims=3), dtype=st.sampled_from([np.int32, np.int64, np.uint32]))
def test_integer_samplers_shapes_dtypes(shape, dtype):
    x = random.randint(KEY, shape, 1, 4, dtype)
    assert x.shape == shape and x.dtype == dtype and np.all((x >= 1) & (x < 4))
    b = random.bernoulli(KEY, 0.5, shape)
    assert b.shape == shape and b.dtype == np.bool_
    assert random.bits(KEY, shape).shape == shape and random.split(KEY, shape).shape == (*shape, 2)


def test_samplers_accept_int_shapes_and_dtype_names():
    assert random.uniform(KEY, 3, "float64").shape == (3,)
    assert random.normal(KEY, np.int64(2)).shape == (2,)
    assert random.uniform(KEY).shape == () and random.normal(KEY).dtype == np.float32


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_key, match",
    [
        (np.zeros(2, np.float32), r"got f32\[2\]"),
        (np.zeros(3, np.uint32), r"got u32\[3\]"),
        (np.zeros((4, 2), np.uint32), r"got u32\[4,2\] \(for a batch of keys, use vmap\)"),
        (np.uint32(0), r"got u32\[\]"),
    ],
)
@pytest.mark.parametrize("sampler", ["uniform", "normal", "split", "bits", "permutation"])
def test_bad_keys_are_rejected(bad_key, match, sampler):
    call = {
        "uniform": lambda k: random.uniform(k, (2,)),
        "normal": lambda k: random.normal(k),
        "split": lambda k: random.split(k),
        "bits": lambda k: random.bits(k),
        "permutation": lambda k: random.permutation(k, 3),
    }[sampler]
    with pytest.raises(TypeError, match=sampler + r" needs a key of type u32\[2\] from random.PRNGKey.*" + match):
        call(bad_key)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: random.uniform(KEY, (2, -1)), ValueError, r"uniform: negative dimensions.*\(2, -1\)"),
        (lambda: random.normal(KEY, (2.5,)), TypeError, r"normal: shape must be a tuple of ints"),
        (lambda: random.bits(KEY, (2**16, 2**16)), ValueError, r"fewer than 2\*\*32 elements"),
        (lambda: random.uniform(KEY, (2,), np.int32), TypeError, r"uniform needs a float dtype.*int32"),
        (lambda: random.normal(KEY, (2,), np.bool_), TypeError, r"normal needs a float dtype.*bool"),
        (lambda: random.randint(KEY, (2,), 0, 3, np.float32), TypeError, r"randint needs an integer dtype"),
        (lambda: random.randint(KEY, (2,), 0.5, 3), TypeError, r"randint needs integer bounds.*f64"),
        (
            lambda: random.uniform(KEY, (2,), minval=np.zeros(3)),
            ValueError,
            r"uniform: shape \(2,\) is not a broadcast",
        ),
        (lambda: random.bernoulli(KEY, np.full(3, 0.5), (2,)), ValueError, r"bernoulli: shape \(2,\)"),
        (lambda: random.bernoulli(KEY, np.array([True])), TypeError, r"bernoulli needs a numeric probability"),
        (lambda: random.categorical(KEY, np.zeros((2, 3)), shape=(4, 3)), ValueError, r"must end with.*\(2,\)"),
        (lambda: random.categorical(KEY, np.zeros((2, 3)), axis=2), ValueError, r"axis 2 is out of range"),
        (lambda: random.categorical(KEY, np.float32(0)), ValueError, r"out of range for logits of shape \(\)"),
        (lambda: random.permutation(KEY, np.zeros(())), TypeError, r"at least one dimension, got f64\[\]"),
        (lambda: random.permutation(KEY, -2), ValueError, r"non-negative, got -2"),
        (lambda: random.permutation(KEY, np.zeros(3), axis=1), ValueError, r"axis 1 is out of range"),
        (lambda: random.PRNGKey(2**64), OverflowError, r"does not fit in 64 bits"),
        (lambda: random.PRNGKey(1.5), TypeError, r"PRNGKey needs an integer scalar seed, got f64\[\]"),
        (lambda: random.PRNGKey(np.arange(2)), TypeError, r"got i64\[2\]"),
        (lambda: random.fold_in(KEY, 1.0), TypeError, r"fold_in needs an integer scalar"),
        (lambda: random.threefry_2x32(KEY, np.zeros(2, np.int32), 0), TypeError, r"uint32 counter words"),
        (
            lambda: random.threefry_2x32(KEY, np.zeros(2, np.uint32), np.zeros(3, np.uint32)),
            TypeError,
            r"shapes \(2,\) and \(3,\)",
        ),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_permutation_length_must_be_static():
    with pytest.raises(TypeError, match="static int"):
        ft.jit(lambda k, n: random.permutation(k, n), backend="interpret")(KEY, np.int32(3))
