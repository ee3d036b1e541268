"""Small real data sets shipped with crnn, for the apps, examples and tests.

Nothing here downloads anything: every data set is a small text file inside
the package (``crnn/datasets/*.csv``, ``*.tsv``), read with the standard
library and NumPy only.

Series (`load_series`)
----------------------
``"airline"`` -- monthly totals of international airline passengers, in
thousands, January 1949 to December 1960 (144 values, from 112 to 622;
they sum to 40363). The classic series G of G. E. P. Box and G. M. Jenkins,
*Time Series Analysis: Forecasting and Control* (Holden-Day, 1976); the same
values are R's ``AirPassengers`` data set (package ``datasets``). A trend with a yearly season whose swing
grows with the level. File: ``airline_passengers.csv``, columns ``month``
(``YYYY-MM``) and ``passengers``.

Labelled text (`load_sentiment`)
--------------------------------
``sentiment.tsv`` -- 240 short English sentences (120 positive, 120
negative) in the style of product, film, food, travel and service reviews,
written for crnn (no third-party source), one per line as
``sentence<TAB>label`` with label 1 (positive) or 0 (negative). Most
sentences come in pairs on the same subject with opposite sentiment, so a
model must read the sentiment words rather than the topic.
"""
from __future__ import annotations

from importlib import resources
from typing import Dict, List, Tuple

import numpy as np

__all__ = ["SERIES", "available_series", "load_series", "series_info", "load_sentiment",
           "read_data_text"]

#: name -> description of each built-in series (file, column, units, source).
SERIES: Dict[str, Dict[str, str]] = {
    "airline": {
        "file": "airline_passengers.csv",
        "column": "passengers",
        "title": "International airline passengers, monthly, 1949-1960 (thousands)",
        "frequency": "monthly",
        "start": "1949-01",
        "source": ("Box & Jenkins, Time Series Analysis: Forecasting and Control (1976), "
                   "series G; R's AirPassengers"),
    },
}


def read_data_text(filename: str) -> str:
    """The text of a data file shipped in ``crnn/datasets`` (UTF-8)."""
    return resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")


def available_series() -> List[str]:
    """Names accepted by `load_series`."""
    return sorted(SERIES)


def series_info(name: str = "airline") -> Dict[str, str]:
    """A copy of the description of the built-in series `name`."""
    if name not in SERIES:
        raise KeyError(f"unknown series {name!r}; available: {', '.join(available_series())}")
    return dict(SERIES[name])


def load_series(name: str = "airline") -> np.ndarray:
    """A built-in time series as a float64 array, oldest value first.

    Parameters
    ----------
    name : str
        One of `available_series()` (``"airline"``).

    Returns
    -------
    ndarray of float64, shape (N,)
    """
    info = series_info(name)
    lines = read_data_text(info["file"]).splitlines()
    header = lines[0].split(",")
    col = header.index(info["column"])
    return np.array([float(line.split(",")[col]) for line in lines[1:] if line.strip()],
                    dtype=np.float64)


def load_sentiment() -> Tuple[List[str], np.ndarray]:
    """The built-in sentiment sentences and their labels.

    Returns
    -------
    texts : list of str
    labels : ndarray of int64, shape (len(texts),)
        1 for positive, 0 for negative.
    """
    texts, labels = [], []
    for line in read_data_text("sentiment.tsv").splitlines():
        if not line.strip():
            continue
        text, label = line.rsplit("\t", 1)
        texts.append(text)
        labels.append(int(label))
    return texts, np.array(labels, dtype=np.int64)
