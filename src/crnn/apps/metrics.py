"""Scores of the text applications: entity-level F1, BLEU, exact match, perplexity.

Plain Python and NumPy, no third-party scorer: each function states exactly
what it computes, so the numbers the commands print can be checked by hand.

Named entities (``crnn tag``)
-----------------------------
`entity_spans`
    The entities of one tag sequence, as ``(type, start, end)`` spans, read
    the way the CoNLL shared tasks' ``conlleval`` script reads them (BIO,
    also IOBES; an ``I-X`` that does not continue an ``X`` entity starts one).
`entity_scores`
    Precision, recall and F1 over whole entities: a predicted entity counts
    only if a true entity has exactly the same first token, last token and
    type. A partly found name, or the right span with the wrong type, is one
    false positive *and* one false negative.

Translation (``crnn translate``)
--------------------------------
`corpus_bleu`
    BLEU-4 over a corpus (Papineni et al., 2002): clipped n-gram precisions
    summed over all sentences, their geometric mean, times the brevity
    penalty; with sacreBLEU's default "exp" smoothing of n-gram orders that
    have no match at all (or none).
`exact_match`
    The share of hypotheses identical to their reference.

Language models (``crnn train-text --words``)
---------------------------------------------
`perplexity`
    ``exp`` of the mean negative log-likelihood (natural logarithms).
`unigram_perplexity`
    The perplexity of the unigram baseline: every token predicted with its
    add-one smoothed frequency in the training tokens, whatever came before.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any, Counter, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "entity_spans",
    "EntityScores",
    "entity_scores",
    "BleuScore",
    "corpus_bleu",
    "ngrams",
    "exact_match",
    "perplexity",
    "unigram_perplexity",
]

Span = Tuple[str, int, int]  # (type, first token, last token + 1)


# --------------------------------------------------------------------------
# Entities
# --------------------------------------------------------------------------


def _split_tag(tag: str) -> Tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "")``; a bare ``"PER"`` -> ``("I", "PER")``."""
    if tag in ("O", "", "-"):
        return "O", ""
    if len(tag) >= 2 and tag[1] in "-_" and tag[0] in "BIESLU":
        prefix, kind = tag[0], tag[2:]
        prefix = {"L": "E", "U": "S"}.get(prefix, prefix)  # BILOU spelling
        return prefix, kind
    return "I", tag  # a tag without a prefix is inside an entity of that type


def entity_spans(tags: Sequence[str]) -> List[Span]:
    """The entities of one sentence's tags, as ``(type, start, end)`` (end exclusive).

    Reads tags as ``conlleval`` does: an entity starts at ``B-X`` or
    ``S-X``, and also at an ``I-X`` or ``E-X`` that does not continue an
    entity of type X (after ``O``, after another type, or after an entity's
    end); it ends before ``O``, before a ``B-``/``S-`` tag, before a tag of
    another type, and after ``E-``/``S-``. ``"O"`` is outside any entity.

    Parameters
    ----------
    tags : sequence of str
        E.g. ``["B-PER", "I-PER", "O", "B-LOC"]``.

    Returns
    -------
    list of (str, int, int)
        E.g. ``[("PER", 0, 2), ("LOC", 3, 4)]``, in sentence order.

    Examples
    --------
    >>> entity_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"])
    [('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 5)]
    """
    spans: List[Span] = []
    start: Optional[int] = None
    kind = ""
    prev_prefix = "O"
    for i, tag in enumerate(tags):
        prefix, k = _split_tag(str(tag))
        # Does an entity end before this token?
        if start is not None:
            ends = prefix in ("O", "B", "S") or k != kind or prev_prefix in ("E", "S")
            if ends:
                spans.append((kind, start, i))
                start = None
        # Does one start here?
        if prefix != "O":
            begins = prefix in ("B", "S") or start is None
            if begins:
                start, kind = i, k
        prev_prefix = prefix
    if start is not None:
        spans.append((kind, start, len(tags)))
    return spans


@dataclass
class EntityScores:
    """Entity-level scores (as fractions in [0, 1]) and the counts they come from.

    Attributes
    ----------
    precision, recall, f1 : float
        Over all entity types together (micro-averaged, as conlleval).
        Precision is 0 when nothing was predicted, recall 0 when there was
        nothing to find, F1 0 when both are 0.
    n_true, n_pred, n_correct : int
        Entities in the references, in the predictions, and found exactly.
    per_type : dict
        ``type -> {"precision", "recall", "f1", "n_true", "n_pred", "n_correct"}``.
    """

    precision: float
    recall: float
    f1: float
    n_true: int
    n_pred: int
    n_correct: int
    per_type: Dict[str, Dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        """The scores and counts as a JSON-serialisable dict."""
        return dict(
            precision=self.precision,
            recall=self.recall,
            f1=self.f1,
            n_true=self.n_true,
            n_pred=self.n_pred,
            n_correct=self.n_correct,
            per_type={k: dict(v) for k, v in self.per_type.items()},
        )


def _prf(n_true: int, n_pred: int, n_correct: int) -> Tuple[float, float, float]:
    p = n_correct / n_pred if n_pred else 0.0
    r = n_correct / n_true if n_true else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


def entity_scores(
    true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]
) -> EntityScores:
    """Entity-level precision, recall and F1 of predicted tag sequences.

    A predicted entity is correct only if the same sentence has a true
    entity with exactly the same start, end and type (`entity_spans`).

    Parameters
    ----------
    true_tags, pred_tags : sequence of sequences of str
        One tag sequence per sentence; sentence by sentence the lengths
        must agree.

    Returns
    -------
    EntityScores
    """
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"{len(true_tags)} true sentences but {len(pred_tags)} predicted ones")
    tp: Counter[str] = collections.Counter()
    nt: Counter[str] = collections.Counter()
    npred: Counter[str] = collections.Counter()
    for i, (true, pred) in enumerate(zip(true_tags, pred_tags)):
        if len(true) != len(pred):
            raise ValueError(f"sentence {i}: {len(true)} true tags but {len(pred)} predicted ones")
        ts, ps = set(entity_spans(true)), set(entity_spans(pred))
        for kind, _, _ in ts:
            nt[kind] += 1
        for kind, _, _ in ps:
            npred[kind] += 1
        for kind, _, _ in ts & ps:
            tp[kind] += 1
    per_type: Dict[str, Dict[str, float]] = {}
    for kind in sorted(set(nt) | set(npred)):
        p, r, f = _prf(nt[kind], npred[kind], tp[kind])
        per_type[kind] = dict(
            precision=p, recall=r, f1=f, n_true=nt[kind], n_pred=npred[kind], n_correct=tp[kind]
        )
    n_true, n_pred, n_correct = sum(nt.values()), sum(npred.values()), sum(tp.values())
    p, r, f = _prf(n_true, n_pred, n_correct)
    return EntityScores(p, r, f, n_true, n_pred, n_correct, per_type)


# --------------------------------------------------------------------------
# BLEU
# --------------------------------------------------------------------------


def ngrams(tokens: Sequence[str], n: int) -> Counter[Tuple[str, ...]]:
    """The n-grams of a token sequence with their counts."""
    return collections.Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


@dataclass
class BleuScore:
    """Corpus BLEU and its parts.

    Attributes
    ----------
    bleu : float
        In [0, 1] (multiply by 100 for the usual scale).
    precisions : list of float
        The (smoothed) n-gram precisions, n = 1 .. max_n, in [0, 1].
    matches, totals : list of int
        Clipped n-gram matches and hypothesis n-grams, summed over the corpus.
    brevity_penalty : float
        ``exp(1 - r / c)`` when the hypotheses' length c is below the
        references' r, else 1.
    hyp_len, ref_len : int
    smooth : str
    """

    bleu: float
    precisions: List[float]
    matches: List[int]
    totals: List[int]
    brevity_penalty: float
    hyp_len: int
    ref_len: int
    smooth: str

    def as_dict(self) -> Dict[str, Any]:
        """The score and its parts as a JSON-serialisable dict."""
        return dict(
            bleu=self.bleu,
            precisions=list(self.precisions),
            matches=list(self.matches),
            totals=list(self.totals),
            brevity_penalty=self.brevity_penalty,
            hyp_len=self.hyp_len,
            ref_len=self.ref_len,
            smooth=self.smooth,
        )


def corpus_bleu(
    references: Sequence[Any],
    hypotheses: Sequence[Sequence[str]],
    max_n: int = 4,
    smooth: str = "exp",
) -> BleuScore:
    """Corpus-level BLEU of tokenised hypotheses against their references.

    For n = 1 .. `max_n`, ``p_n = m_n / t_n``, where ``t_n`` counts the
    n-grams of all hypotheses and ``m_n`` those that also occur in the
    hypothesis's reference(s), each n-gram counted at most as often as in
    the reference that has it most ("clipped"). Then::

        BLEU = BP * exp(mean_n log p_n),   BP = 1 if c >= r else exp(1 - r/c)

    with c the total hypothesis length and r the total reference length (for
    several references per sentence, the length closest to the hypothesis's,
    the shorter one on a tie).

    Smoothing (only for orders without a single match): ``"exp"``, the
    default of sacreBLEU and of ``mteval-v13a`` (Chen & Cherry 2014, method
    3), uses ``1 / (2^k t_n)`` for the k-th such order; ``"none"`` leaves
    ``p_n = 0`` (so BLEU is 0). BLEU is 0 when no unigram matches at all,
    and when the hypotheses are empty. An order with no hypothesis n-gram at
    all (every hypothesis shorter than n) has p_n = 0 too, smoothed alike.

    Parameters
    ----------
    references : sequence
        Per hypothesis, one reference (a list of tokens) or several (a list
        of token lists).
    hypotheses : sequence of token lists
    max_n : int
        4 for BLEU-4.
    smooth : {"exp", "none"}

    Returns
    -------
    BleuScore
    """
    if smooth not in ("exp", "none"):
        raise ValueError(f"smooth must be 'exp' or 'none', got {smooth!r}")
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n must be an integer >= 1, got {max_n!r}")
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    matches = [0] * max_n
    totals = [0] * max_n
    hyp_len = ref_len = 0
    for ref, hyp_tokens in zip(references, hypotheses):
        refs = _as_reference_list(ref)
        hyp = list(hyp_tokens)
        hyp_len += len(hyp)
        ref_len += min((len(r) for r in refs), key=lambda n: (abs(n - len(hyp)), n))
        for n in range(1, max_n + 1):
            h = ngrams(hyp, n)
            if not h:
                continue
            best: Counter[Tuple[str, ...]] = collections.Counter()
            for r in refs:
                best |= ngrams(r, n)  # element-wise maximum of the counts
            matches[n - 1] += sum(min(c, best[g]) for g, c in h.items())
            totals[n - 1] += sum(h.values())
    precisions = [0.0] * max_n
    if hyp_len == 0 or matches[0] == 0:
        bp = (
            1.0
            if hyp_len >= ref_len
            else (0.0 if hyp_len == 0 else math.exp(1 - ref_len / hyp_len))
        )
        for n in range(max_n):
            precisions[n] = matches[n] / totals[n] if totals[n] else 0.0
        return BleuScore(0.0, precisions, matches, totals, bp, hyp_len, ref_len, smooth)
    k = 1.0
    for n in range(max_n):
        if matches[n] > 0:
            precisions[n] = matches[n] / totals[n]
        elif smooth == "exp" and totals[n] > 0:
            k *= 2.0
            precisions[n] = 1.0 / (k * totals[n])
        else:
            precisions[n] = 0.0
    bp = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    if min(precisions) <= 0.0:
        score = 0.0
    else:
        score = bp * math.exp(sum(math.log(p) for p in precisions) / max_n)
    return BleuScore(score, precisions, matches, totals, bp, hyp_len, ref_len, smooth)


def _as_reference_list(ref: Any) -> List[List[str]]:
    """One reference (token list) or several (list of token lists) -> list of token lists."""
    if isinstance(ref, str):
        raise TypeError("references must be token lists, not strings (tokenise them first)")
    ref = list(ref)
    if ref and not isinstance(ref[0], str):
        refs = [list(r) for r in ref]
        if not refs:
            raise ValueError("a sentence has an empty list of references")
        return refs
    return [ref]


def exact_match(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> float:
    """The share (in [0, 1]) of hypotheses whose tokens equal their reference's."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not hypotheses:
        return 0.0
    return sum(list(r) == list(h) for r, h in zip(references, hypotheses)) / len(hypotheses)


# --------------------------------------------------------------------------
# Perplexity
# --------------------------------------------------------------------------


def perplexity(total_nll: float, n_tokens: int) -> float:
    """``exp(total_nll / n_tokens)``: the perplexity of a mean negative log-likelihood (nats)."""
    if n_tokens <= 0:
        raise ValueError(f"n_tokens must be > 0, got {n_tokens}")
    return float(math.exp(total_nll / n_tokens))


def unigram_perplexity(train_ids: Iterable[int], test_ids: Iterable[int], vocab_size: int) -> float:
    """Perplexity on `test_ids` of the add-one smoothed unigram model of `train_ids`.

    ``P(w) = (count_train(w) + 1) / (N_train + V)`` for every id w in
    ``[0, V)``, whatever the context: the baseline a language model must
    beat to show it uses the words before.
    """
    tr = np.asarray(
        list(train_ids) if not isinstance(train_ids, np.ndarray) else train_ids, dtype=np.int64
    )
    te = np.asarray(
        list(test_ids) if not isinstance(test_ids, np.ndarray) else test_ids, dtype=np.int64
    )
    if te.size == 0:
        raise ValueError("test_ids is empty")
    counts = np.bincount(tr, minlength=vocab_size).astype(np.float64)
    if counts.shape[0] > vocab_size or (te.size and (te.min() < 0 or te.max() >= vocab_size)):
        raise ValueError(f"ids must lie in [0, {vocab_size})")
    logp = np.log(counts + 1.0) - math.log(tr.size + vocab_size)
    return perplexity(float(-logp[te].sum()), int(te.size))
