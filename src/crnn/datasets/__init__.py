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
``sentiment.tsv`` -- 300 short English sentences (150 positive, 150
negative) in the style of product, film, food, travel and service reviews,
written for crnn (no third-party source), one per line as
``sentence<TAB>label`` with label 1 (positive) or 0 (negative). The
sentences come in pairs, lines 2k and 2k + 1 (from 0): the same subject
with opposite sentiment ("The soup was hot, delicious ..." / "The soup was
cold and had no taste."), so the topic words say nothing about the label
and a model must read the sentiment. `load_sentiment` returns the pair of
each sentence as its group: split by group, or a model can score well by
remembering the twin of a test sentence in reverse.

Named entities (`load_ner`)
---------------------------
``ner_train.tsv`` (303 sentences, 2,544 tokens) and ``ner_test.tsv`` (147
sentences, 1,358 tokens) -- short English sentences in the style of news,
business, travel and everyday notes ("Maria joined Siemens in Berlin in
March ."), written and labelled by hand for crnn (no third-party source).
CoNLL layout: a token and its BIO tag per line, tab-separated, a blank line
between sentences. Four entity types: PER (people), LOC (places: cities,
countries, regions, rivers), ORG (companies, universities, clubs, agencies)
and DATE (calendar dates: weekdays, months, days, years; not relative ones
such as "yesterday"). Training: 210 PER, 274 LOC, 123 ORG, 92 DATE
entities; held-out: 96 PER, 116 LOC, 56 ORG, 47 DATE. No person, place or
organisation named in a held-out sentence is named in a training sentence
(generic words inside names, such as "University", do recur). The first 98
held-out sentences follow sentence patterns of the training set with other
names; the last 49 are built in ways the training set does not show (and 6
of them have no entity). Dates do recur (there are only twelve months).

Translation pairs (`load_translation`)
--------------------------------------
``en_de.tsv`` -- 639 short English sentences and their German translations,
written for crnn (no third-party source), one pair per line as
``English<TAB>German``: everyday present-tense statements, questions,
negations, commands and some past tenses over a small vocabulary (342
English words, lower-cased, and 438 German ones), so that a held-out pair
is mostly made of words the training pairs contain, in new combinations ("The bus is always late." /
"Der Bus hat immer Verspätung.").
"""

from __future__ import annotations

from importlib import resources
from typing import Dict, List, NamedTuple, Tuple

import numpy as np

__all__ = [
    "SERIES",
    "available_series",
    "load_series",
    "series_info",
    "load_sentiment",
    "LabelledTexts",
    "read_data_text",
    "load_ner",
    "load_translation",
]

#: name -> description of each built-in series (file, column, units, source).
SERIES: Dict[str, Dict[str, str]] = {
    "airline": {
        "file": "airline_passengers.csv",
        "column": "passengers",
        "title": "International airline passengers, monthly, 1949-1960 (thousands)",
        "frequency": "monthly",
        "start": "1949-01",
        "source": (
            "Box & Jenkins, Time Series Analysis: Forecasting and Control (1976), "
            "series G; R's AirPassengers"
        ),
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
    return np.array(
        [float(line.split(",")[col]) for line in lines[1:] if line.strip()], dtype=np.float64
    )


class LabelledTexts(NamedTuple):
    """Sentences, their labels and their groups (see `load_sentiment`)."""

    texts: List[str]
    labels: np.ndarray
    groups: np.ndarray


def load_sentiment() -> LabelledTexts:
    """The built-in sentiment sentences, their labels and their pairs.

    Returns
    -------
    texts : list of str
    labels : ndarray of int64, shape (len(texts),)
        1 for positive, 0 for negative.
    groups : ndarray of int64, shape (len(texts),)
        The pair each sentence belongs to (``index // 2``): keep both
        sentences of a pair on the same side of a train/test split.
    """
    texts, labels = [], []
    for line in read_data_text("sentiment.tsv").splitlines():
        if not line.strip():
            continue
        text, label = line.rsplit("\t", 1)
        texts.append(text)
        labels.append(int(label))
    n = len(texts)
    return LabelledTexts(texts, np.array(labels, dtype=np.int64), np.arange(n, dtype=np.int64) // 2)


def _conll_sentences(filename: str) -> List[Tuple[List[str], List[str]]]:
    sentences: List[Tuple[List[str], List[str]]] = []
    tokens: List[str] = []
    tags: List[str] = []
    for line in read_data_text(filename).splitlines() + [""]:
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        token, tag = line.split("\t")
        tokens.append(token)
        tags.append(tag)
    return sentences


def load_ner() -> Tuple[List[Tuple[List[str], List[str]]], List[Tuple[List[str], List[str]]]]:
    """The built-in named-entity sentences: ``(train, test)``.

    Returns
    -------
    train, test : list of (tokens, tags)
        303 and 147 sentences; ``tags`` are BIO tags (``"B-PER"``,
        ``"I-PER"``, ``"O"``, ...) of the types PER, LOC, ORG and DATE. No
        person, place or organisation of `test` occurs in `train`.
    """
    return _conll_sentences("ner_train.tsv"), _conll_sentences("ner_test.tsv")


def load_translation() -> List[Tuple[str, str]]:
    """The built-in English-German sentence pairs: a list of ``(english, german)``.

    639 short sentences with their translations, in the order of the file
    (``en_de.tsv``); split them at random for training and testing.
    """
    pairs = []
    for line in read_data_text("en_de.tsv").splitlines():
        if line.strip():
            en, de = line.split("\t")
            pairs.append((en, de))
    return pairs
