"""Write wine.csv: scikit-learn's bundled wine data (178 wines, 13 measurements) with the cultivar as text.

Run from the repository root: `python examples/table/make_data.py`. The file is committed; this script shows where
it comes from and is checked by the examples' test.
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_wine

HERE = Path(__file__).resolve().parent


def wine_csv_text() -> str:
    """Return the CSV text of the wine table: 13 numeric columns and a `cultivar` column of class names."""
    bunch = load_wine(as_frame=True)
    frame = bunch.frame.drop(columns="target")
    frame["cultivar"] = [bunch.target_names[i] for i in bunch.target]
    return str(frame.to_csv(index=False, float_format="%.4g", lineterminator="\n"))


if __name__ == "__main__":
    (HERE / "wine.csv").write_text(wine_csv_text(), encoding="utf-8")
    print(f"wrote {HERE / 'wine.csv'}")
