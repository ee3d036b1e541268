"""The scores of the text applications (crnn.apps.metrics) on cases computed by hand:
entity-level precision / recall / F1 (conlleval's reading of BIO tags), corpus
BLEU-4 with brevity penalty and smoothing, exact match, perplexities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crnn.apps.metrics import (
    corpus_bleu,
    entity_scores,
    entity_spans,
    exact_match,
    ngrams,
    perplexity,
    unigram_perplexity,
)

# --------------------------------------------------------------------------
# Entity spans
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags, spans",
    [
        ([], []),
        (["O", "O"], []),
        (["B-PER"], [("PER", 0, 1)]),
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        # Two entities of one type side by side: B starts a new one.
        (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),
        # conlleval: an I- tag after O (or after another type) starts an entity.
        (["O", "I-PER", "I-PER"], [("PER", 1, 3)]),
        (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),
        (["I-ORG"], [("ORG", 0, 1)]),
        # An entity running to the end of the sentence.
        (["O", "B-DATE", "I-DATE"], [("DATE", 1, 3)]),
        # IOBES: E ends, S is a single-token entity.
        (["B-ORG", "I-ORG", "E-ORG", "S-LOC", "O"], [("ORG", 0, 3), ("LOC", 3, 4)]),
        (["S-PER", "S-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["E-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        # Types with hyphens in them keep them.
        (["B-GPE-CITY", "I-GPE-CITY"], [("GPE-CITY", 0, 2)]),
    ],
)
def test_entity_spans(tags, spans):
    assert entity_spans(tags) == spans


# --------------------------------------------------------------------------
# Entity scores
# --------------------------------------------------------------------------

TRUE = ["B-PER", "I-PER", "O", "B-LOC", "O"]  # (PER 0-2), (LOC 3-4)


def test_perfect_prediction():
    s = entity_scores([TRUE, ["B-ORG"]], [TRUE, ["B-ORG"]])
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0)
    assert (s.n_true, s.n_pred, s.n_correct) == (3, 3, 3)
    assert set(s.per_type) == {"PER", "LOC", "ORG"}


def test_partial_span_counts_as_wrong():
    # "Maria" found, "Maria Schmidt" not: one false positive and one false negative.
    s = entity_scores([TRUE], [["B-PER", "O", "O", "B-LOC", "O"]])
    assert (s.n_true, s.n_pred, s.n_correct) == (2, 2, 1)
    assert s.precision == 0.5 and s.recall == 0.5 and s.f1 == 0.5
    # A span that runs one token too far is wrong as well.
    s = entity_scores([TRUE], [["B-PER", "I-PER", "I-PER", "B-LOC", "O"]])
    assert s.n_correct == 1 and s.f1 == 0.5


def test_type_mismatch_counts_as_wrong():
    s = entity_scores([TRUE], [["B-ORG", "I-ORG", "O", "B-LOC", "O"]])
    assert (s.n_true, s.n_pred, s.n_correct) == (2, 2, 1)
    assert s.per_type["PER"] == dict(
        precision=0.0, recall=0.0, f1=0.0, n_true=1, n_pred=0, n_correct=0
    )
    assert s.per_type["ORG"]["n_pred"] == 1 and s.per_type["ORG"]["precision"] == 0.0
    assert s.per_type["LOC"]["f1"] == 1.0


def test_precision_recall_differ():
    # 3 true entities; 2 predicted, both right: P = 1, R = 2/3, F1 = 0.8.
    true = [["B-PER", "O", "B-LOC", "O", "B-DATE"]]
    pred = [["B-PER", "O", "B-LOC", "O", "O"]]
    s = entity_scores(true, pred)
    assert s.precision == 1.0 and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(0.8)
    # 1 true, 4 predicted, 1 right: P = 0.25, R = 1, F1 = 0.4.
    s = entity_scores([["B-PER", "O", "O", "O"]], [["B-PER", "B-LOC", "B-ORG", "B-DATE"]])
    assert (s.precision, s.recall) == (0.25, 1.0) and s.f1 == pytest.approx(0.4)


def test_i_tag_without_b_is_read_as_conlleval_does():
    # The tagger wrote I-PER I-PER for a two-word name: conlleval accepts it.
    s = entity_scores([["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]])
    assert s.f1 == 1.0


def test_nothing_to_find_or_nothing_predicted():
    s = entity_scores([["O", "O"]], [["O", "O"]])
    assert (s.precision, s.recall, s.f1, s.n_true, s.n_pred) == (0.0, 0.0, 0.0, 0, 0)
    s = entity_scores([TRUE], [["O"] * 5])
    assert (s.precision, s.recall, s.f1) == (0.0, 0.0, 0.0) and s.n_true == 2


def test_micro_average_over_sentences():
    # Sentence 1: 2 true, 2 right. Sentence 2: 2 true, 1 predicted, wrong type.
    true = [TRUE, ["B-ORG", "O", "B-PER"]]
    pred = [TRUE, ["B-LOC", "O", "O"]]
    s = entity_scores(true, pred)
    assert (s.n_true, s.n_pred, s.n_correct) == (4, 3, 2)
    p, r = 2 / 3, 2 / 4
    assert s.precision == pytest.approx(p) and s.recall == pytest.approx(r)
    assert s.f1 == pytest.approx(2 * p * r / (p + r))
    d = s.as_dict()
    assert d["f1"] == s.f1 and d["per_type"]["ORG"]["recall"] == 0.0


def test_entity_scores_rejects_mismatched_input():
    with pytest.raises(ValueError, match="sentence 0"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="2 true sentences but 1"):
        entity_scores([["O"], ["O"]], [["O"]])


# --------------------------------------------------------------------------
# BLEU
# --------------------------------------------------------------------------


def toks(s):
    return s.split()


def test_ngrams():
    assert ngrams(toks("a b a b"), 2) == {("a", "b"): 2, ("b", "a"): 1}
    assert ngrams(toks("a"), 2) == {}


def test_bleu_identical_is_one():
    b = corpus_bleu([toks("the cat sat on the mat")], [toks("the cat sat on the mat")])
    assert b.bleu == pytest.approx(1.0) and b.brevity_penalty == 1.0
    assert b.matches == [6, 5, 4, 3] and b.totals == [6, 5, 4, 3]


def test_bleu_by_hand_with_clipping_and_smoothing():
    # ref "the cat is on the mat", hyp "the cat the cat on the mat":
    # 1-grams: the x3 (clipped to 2), cat x2 (clipped to 1), on, mat -> 5/7
    # 2-grams: the cat x2 (clipped to 1), on the, the mat -> 3/6
    # 3-grams: on the mat -> 1/5;   4-grams: none of 4 -> smoothed 1 / (2 * 4)
    # c = 7 >= r = 6: BP = 1.   BLEU = (5/7 * 3/6 * 1/5 * 1/8) ** (1/4) = (1/112) ** (1/4)
    ref, hyp = toks("the cat is on the mat"), toks("the cat the cat on the mat")
    b = corpus_bleu([ref], [hyp])
    assert b.matches == [5, 3, 1, 0] and b.totals == [7, 6, 5, 4]
    assert b.precisions == pytest.approx([5 / 7, 1 / 2, 1 / 5, 1 / 8])
    assert b.bleu == pytest.approx((1 / 112) ** 0.25)  # 0.30740
    assert b.bleu == pytest.approx(0.307394, abs=1e-6)
    # Without smoothing a missing order makes BLEU 0.
    assert corpus_bleu([ref], [hyp], smooth="none").bleu == 0.0


def test_bleu_two_missing_orders_halve_again():
    # ref "a b c d e", hyp "a b x c y": 1-grams 3/5, 2-grams 1/4 (a b), 3- and 4-grams 0.
    # exp smoothing: p3 = 1 / (2 * 3), p4 = 1 / (4 * 2).
    b = corpus_bleu([toks("a b c d e")], [toks("a b x c y")])
    assert b.matches == [3, 1, 0, 0] and b.totals == [5, 4, 3, 2]
    assert b.precisions == pytest.approx([3 / 5, 1 / 4, 1 / 6, 1 / 8])
    assert b.bleu == pytest.approx((3 / 5 * 1 / 4 * 1 / 6 * 1 / 8) ** 0.25)


def test_bleu_brevity_penalty():
    # All n-grams right, but half as long as the reference: BP = exp(1 - 8/4) = e^-1.
    b = corpus_bleu([toks("a b c d e f g h")], [toks("a b c d")])
    assert b.precisions == [1.0, 1.0, 1.0, 1.0]
    assert b.brevity_penalty == pytest.approx(math.exp(-1))
    assert b.bleu == pytest.approx(math.exp(-1))
    assert (b.hyp_len, b.ref_len) == (4, 8)


def test_bleu_sums_counts_over_the_corpus():
    # Not the mean of sentence scores: counts are summed first.
    # s1: hyp = ref = "a b c d" -> m = [4, 3, 2, 1], t = [4, 3, 2, 1]
    # s2: hyp "x y", ref "p q"  -> m = [0, 0], t = [2, 1]
    # sums m = [4, 3, 2, 1], t = [6, 4, 2, 1]; c = r = 6
    b = corpus_bleu([toks("a b c d"), toks("p q")], [toks("a b c d"), toks("x y")])
    assert b.matches == [4, 3, 2, 1] and b.totals == [6, 4, 2, 1]
    assert b.bleu == pytest.approx((4 / 6 * 3 / 4 * 1 * 1) ** 0.25)  # 0.5 ** 0.25 = 0.8409
    assert b.bleu == pytest.approx(0.840896, abs=1e-6)


def test_bleu_several_references():
    # Clipping takes each n-gram's largest count in any reference; the
    # reference length is the one closest to the hypothesis's.
    refs = [[toks("the the cat"), toks("a cat is here now")]]
    b = corpus_bleu(refs, [toks("the the the cat")])
    assert b.matches[0] == 3  # "the" clipped to 2 (first reference), "cat" 1
    assert b.ref_len == 3  # |3 - 4| = 1 beats |5 - 4| = 1 on the tie: the shorter
    refs = [[toks("x y"), toks("a b c d e f")]]
    assert corpus_bleu(refs, [toks("a b c d e")]).ref_len == 6


def test_bleu_degenerate_cases():
    assert corpus_bleu([], []).bleu == 0.0
    assert corpus_bleu([toks("a b")], [[]]).bleu == 0.0
    assert corpus_bleu([toks("a b c")], [toks("x y z")]).bleu == 0.0  # no unigram match
    b = corpus_bleu([toks("a b c")], [toks("a b c")])  # shorter than 4: no 4-gram to count
    assert b.totals == [3, 2, 1, 0] and b.bleu == 0.0
    with pytest.raises(ValueError, match="2 references but 1"):
        corpus_bleu([toks("a"), toks("b")], [toks("a")])
    with pytest.raises(TypeError, match="token lists"):
        corpus_bleu(["a b c"], [toks("a b c")])
    with pytest.raises(ValueError, match="smooth"):
        corpus_bleu([toks("a")], [toks("a")], smooth="add1")


def test_bleu_max_n():
    # BLEU-2 of the hand case above: (5/7 * 1/2) ** (1/2).
    ref, hyp = toks("the cat is on the mat"), toks("the cat the cat on the mat")
    assert corpus_bleu([ref], [hyp], max_n=2).bleu == pytest.approx((5 / 14) ** 0.5)


def test_exact_match():
    refs = [toks("a b"), toks("c d"), toks("e")]
    assert exact_match(refs, [toks("a b"), toks("c"), toks("e")]) == pytest.approx(2 / 3)
    assert exact_match([], []) == 0.0
    with pytest.raises(ValueError):
        exact_match(refs, [])


# --------------------------------------------------------------------------
# Perplexity
# --------------------------------------------------------------------------


def test_perplexity():
    assert perplexity(0.0, 10) == 1.0
    assert perplexity(10 * math.log(4), 10) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        perplexity(1.0, 0)


def test_unigram_perplexity_by_hand():
    # V = 3, train ids [1, 1, 2] -> P = (count + 1) / (3 + 3): P(0) = 1/6, P(1) = 3/6, P(2) = 2/6.
    # test [1, 2]: perplexity = (1/2 * 1/3) ** (-1/2) = sqrt(6)
    assert unigram_perplexity([1, 1, 2], [1, 2], 3) == pytest.approx(math.sqrt(6))
    # A uniform model of V ids has perplexity V.
    assert unigram_perplexity(np.arange(5), np.array([0, 4, 2]), 5) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        unigram_perplexity([1], [], 3)
    with pytest.raises(ValueError):
        unigram_perplexity([1], [3], 3)
