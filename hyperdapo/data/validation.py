"""Checks on parsed market data, and the one error type that names the file, the row and the field.

Row numbers are 1-based *data rows* (the header is not counted) for CSV files and 1-based *lines* for
JSON-lines files; the message says which.

Bad market data, class by class (README "Bad market data"):

- rejected (DataFileError naming file, row, field): a price that is zero, negative, infinite or NaN where its
  level has a size (books) or on any trade; a NaN or negative size where a level has a price, or on a trade;
  book levels out of order (bids must fall, asks rise, best first); timestamps going backwards;
- dropped with a warning and counted (:func:`drop_rows`, ``ReadResult.dropped``): crossed books (best bid >=
  best ask), rows with a blank best level on either side (no mid), and exact duplicates of the previous row.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numba
import numpy as np


class DataFileError(ValueError):
    """A market-data file that cannot be read as what it claims to be."""

    def __init__(self, path: Path | str, problem: str, *, row: int | None = None, unit: str = "data row",
                 field: str | None = None):
        where = f"{path}"
        if row is not None:
            where += f", {unit} {row}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")
        self.path, self.row, self.field = Path(path), row, field


def require_columns(path: Path, header: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFileError(path, f"missing column(s) {missing}; the header has {header[:8]}"
                                  f"{' ...' if len(header) > 8 else ''}", row=1, unit="line (header)")


def check_non_decreasing(path: Path, ts_us: np.ndarray, field: str = "timestamp", unit: str = "data row") -> None:
    """Timestamps must not go backwards; names the first offending row (1-based)."""
    back = np.flatnonzero(np.diff(ts_us) < 0)
    if len(back):
        k = int(back[0]) + 1  # 0-based index of the row that went back
        raise DataFileError(path, f"timestamp goes backwards ({ts_us[k]} after {ts_us[k - 1]})", row=k + 1,
                            unit=unit, field=field)


def check_non_negative(path: Path, columns: dict[str, np.ndarray], unit: str = "data row") -> None:
    """Sizes / amounts must be >= 0 (NaN = empty level is allowed); names the first offending row."""
    for name, values in columns.items():
        values = values.reshape(len(values), -1)
        bad = np.flatnonzero((values < 0).any(axis=1))
        if len(bad):
            k = int(bad[0])
            raise DataFileError(path, f"negative size {values[k][values[k] < 0][0]}", row=k + 1, unit=unit,
                                field=name)


def check_levels(path: Path, side: str, px: np.ndarray, sz: np.ndarray, unit: str = "data row") -> None:
    """A book side ``side`` ("bids" / "asks"), (N, L) prices and sizes, NaN = empty level: every present level
    has a finite price > 0 and a finite size >= 0, and levels are strictly ordered away from the best.

    One compiled pass finds whether anything is wrong; only then do the array expressions below locate it."""
    if _levels_ok(px, sz, side == "bids"):
        return
    present = ~np.isnan(px) | ~np.isnan(sz)
    bad_px = present & ~(np.isfinite(px) & (px > 0))
    bad_sz = present & ~(np.isfinite(sz) & (sz >= 0))
    for bad, field, what in ((bad_px, "price", "price"), (bad_sz, "amount", "size")):
        if bad.any():
            k, lvl = np.argwhere(bad)[0]
            raise DataFileError(path, f"{what} {(px if field == 'price' else sz)[k, lvl]} at level {lvl}: must be "
                                f"finite and {'> 0' if field == 'price' else '>= 0'}", row=int(k) + 1, unit=unit,
                                field=f"{side}[{lvl}].{field}")
    step = np.diff(px, axis=1)  # NaN where a level is empty: never counted as out of order
    wrong = (step >= 0) if side == "bids" else (step <= 0)
    if wrong.any():
        k, lvl = np.argwhere(wrong)[0]
        order = "descending" if side == "bids" else "ascending"
        raise DataFileError(path, f"levels not {order}: level {lvl + 1} at {px[k, lvl + 1]} after {px[k, lvl]}",
                            row=int(k) + 1, unit=unit, field=f"{side}[{lvl + 1}].price")


@numba.njit(cache=True)
def _levels_ok(px: np.ndarray, sz: np.ndarray, descending: bool) -> bool:
    """The conditions of :func:`check_levels`, row by row, without temporaries (False at the first violation)."""
    for i in range(px.shape[0]):
        for j in range(px.shape[1]):
            p, s = px[i, j], sz[i, j]
            if (p == p or s == s) and not (0.0 < p < np.inf and 0.0 <= s < np.inf):
                return False
            if j > 0 and (p >= px[i, j - 1] if descending else p <= px[i, j - 1]):
                return False
    return True


def check_trade_values(path: Path, price: np.ndarray, amount: np.ndarray) -> None:
    """Every trade has a finite price > 0 and a finite amount >= 0."""
    for name, values, ok in (("price", price, np.isfinite(price) & (price > 0)),
                             ("amount", amount, np.isfinite(amount) & (amount >= 0))):
        if not ok.all():
            k = int(np.flatnonzero(~ok)[0])
            raise DataFileError(path, f"{name} {values[k]}: must be finite and {'> 0' if name == 'price' else '>= 0'}",
                                row=k + 1, field=name)


def duplicate_rows(*columns: np.ndarray) -> np.ndarray:
    """(N,) rows identical to the previous row in every column (NaN equal to NaN).

    Each column is compared only on the rows still equal in the columns before it, so pass the most telling
    column first (the timestamp): the wide level grids are then looked at for a handful of rows, not all N."""
    n = len(columns[0])
    rows = np.arange(1, n)  # (M,) rows equal to their predecessor in every column compared so far
    for c in columns:
        c = c.reshape(n, -1)
        cur, prev = c[rows], c[rows - 1]
        equal = cur == prev
        if c.dtype.kind == "f":
            equal |= np.isnan(cur) & np.isnan(prev)
        rows = rows[equal.all(axis=1)]
    same = np.zeros(n, dtype=bool)
    same[rows] = True
    return same


def drop_rows(path: Path, masks: dict[str, np.ndarray], unit: str = "data row") -> tuple[np.ndarray, dict[str, int]]:
    """Warn about each class of dropped rows (``masks``: class -> (N,) bool) and return (keep mask, counts)."""
    keep, counts = np.ones(len(next(iter(masks.values()))), dtype=bool), {}
    for name, mask in masks.items():
        counts[name] = int((mask & keep).sum())
        if counts[name]:
            first = (np.flatnonzero(mask & keep)[:5] + 1).tolist()
            warnings.warn(f"{path}: dropped {counts[name]} {name} row(s), first at {unit}s {first}", stacklevel=3)
        keep &= ~mask
    return keep, counts


def crossed_rows(best_bid: np.ndarray, best_ask: np.ndarray) -> np.ndarray:
    """Rows whose best bid >= best ask (both present)."""
    return (best_bid >= best_ask) & ~np.isnan(best_bid) & ~np.isnan(best_ask)
