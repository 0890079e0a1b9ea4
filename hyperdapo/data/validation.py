"""Checks on parsed market data, and the one error type that names the file, the row and the field.

Row numbers are 1-based *data rows* (the header is not counted) for CSV files and 1-based *lines* for
JSON-lines files; the message says which. A crossed book (best bid >= best ask) is not an error: the row
is dropped with a warning and counted in the ingest summary.
"""

from __future__ import annotations

import warnings
from pathlib import Path

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


def crossed_rows(best_bid: np.ndarray, best_ask: np.ndarray) -> np.ndarray:
    """Rows whose best bid >= best ask (both present)."""
    return (best_bid >= best_ask) & ~np.isnan(best_bid) & ~np.isnan(best_ask)


def warn_crossed(path: Path, crossed: np.ndarray, unit: str = "data row") -> int:
    """Warn about crossed rows (they are dropped by the caller) and return how many there were."""
    n = int(crossed.sum())
    if n:
        first = (np.flatnonzero(crossed)[:5] + 1).tolist()
        warnings.warn(f"{path}: dropped {n} crossed book row(s) (best bid >= best ask), first at {unit}s {first}",
                      stacklevel=3)
    return n
