"""The vectorised row checks of hyperdapo.data.validation against their obvious loops (STYLE habit 4)."""

from __future__ import annotations

import numpy as np
import pytest

from hyperdapo.data.validation import duplicate_rows


def duplicate_rows_loop(*columns: np.ndarray) -> np.ndarray:
    """The oracle: row i is a duplicate when every column's row i equals row i - 1 (NaN equal to NaN)."""
    n = len(columns[0])
    same = np.zeros(n, dtype=bool)
    for i in range(1, n):
        same[i] = all(np.array_equal(c[i], c[i - 1], equal_nan=c.dtype.kind == "f") for c in columns)
    return same


@pytest.mark.parametrize("seed", range(5))
def test_duplicate_rows_matches_loop(seed):
    rng = np.random.default_rng(seed)
    n, n_levels = 400, 3
    ts_us = np.cumsum(rng.integers(0, 2, n))  # many equal timestamps: the other columns decide
    px = rng.integers(1, 3, (n, n_levels)).astype(float)
    px[rng.random((n, n_levels)) < 0.3] = np.nan  # empty levels compare equal to empty levels
    side = rng.integers(-1, 2, n).astype(np.int8)
    copy = np.flatnonzero(rng.random(n - 1) < 0.4) + 1  # rows repeating the row before (in ascending order)
    for i in copy:
        ts_us[i], px[i], side[i] = ts_us[i - 1], px[i - 1], side[i - 1]
    px[copy[::3], rng.integers(0, n_levels)] = 7.0  # and some repeats differing in one level
    expected = duplicate_rows_loop(ts_us, px, side)
    assert expected.sum() > 10
    np.testing.assert_array_equal(duplicate_rows(ts_us, px, side), expected)


def test_duplicate_rows_one_row():
    assert not duplicate_rows(np.array([5]), np.array([[1.0, np.nan]])).any()
