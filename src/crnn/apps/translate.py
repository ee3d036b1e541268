"""``crnn translate``: sentence translation with an encoder-decoder and attention.

The model, `Translator`, is a `crnn.models.Seq2Seq` that carries its two
vocabularies: the source words (lower-cased) are embedded and read by the
encoder (an LSTM by default); the decoder (the same cell) starts from the
encoder's final state, reads the previous target word, and at every step
attends to all the encoder's outputs (Bahdanau's "additive" score by
default; ``--attention dot | general | additive | none``) to score the next
word. It
is trained with teacher forcing (the decoder reads the true previous word),
softmax cross-entropy over the target words (padding masked) and Adam with
gradient-norm clipping.

Held-out pairs are translated without teacher forcing, word after word until
the end token: greedily, or by beam search with ``--beam K`` (GNMT's length
normalisation, alpha 0.6). The command reports:

- corpus BLEU-4 (`crnn.apps.metrics.corpus_bleu`: clipped n-gram precisions
  summed over the held-out pairs, brevity penalty, sacreBLEU's default "exp"
  smoothing of orders without any match; on crnn's tokens, case-sensitive,
  one reference per sentence), on the usual 0-100 scale;
- exact match: the share of held-out sentences translated word for word as
  the reference;

next to the copy-the-source baseline (the source sentence as it is, which
scores on names, numbers and punctuation only).

Data
----
Without ``--tsv`` the data are the 639 built-in English-German pairs
(`crnn.datasets.load_translation`), split at random (``--test-fraction``,
``--seed``). ``--tsv FILE`` reads ``source<TAB>target`` lines (UTF-8; blank
lines and lines starting with ``#`` are skipped). Sentences are split into
words and punctuation marks by `crnn.data.tokenize`; the source side is
lower-cased, the target side keeps its case. The vocabularies come from the
training pairs only: a word seen only in held-out sentences reads (and can
only be written) as ``<unk>``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, TypedDict

import numpy as np

from .. import datasets
from ..data import WordVocab, pad_batch, tokenize
from ..losses import softmax_cross_entropy
from ..models import Seq2Seq
from ..optim import Adam
from ..serialization import load as _load, register_module, save as _save
from .common import (
    CLIError,
    Progress,
    add_cell_option,
    add_embedding_option,
    add_threads_option,
    apply_threads,
    check_output_path,
    fraction,
    nonnegative_int,
    one_blas_thread,
    positive_float,
    positive_int,
    print_json,
    read_text,
)
from .metrics import BleuScore, corpus_bleu, exact_match
from .text import detokenize

__all__ = [
    "Translator",
    "TranslateResult",
    "load_tsv",
    "train_translator",
    "evaluate",
    "format_attention",
    "register",
    "handler",
    "DEFAULTS",
    "ATTENTIONS",
]


class _Defaults(TypedDict):
    cell: str
    embedding_dim: int
    hidden: int
    attention: str
    epochs: int
    seconds: float
    lr: float
    batch_size: int
    beam: int
    test_fraction: float
    seed: int
    length_penalty: float


DEFAULTS = _Defaults(
    cell="lstm",
    embedding_dim=64,
    hidden=128,
    attention="additive",
    epochs=60,
    seconds=60.0,
    lr=0.005,
    batch_size=32,
    beam=1,
    test_fraction=0.15,
    seed=0,
    length_penalty=0.6,
)
ATTENTIONS = ("dot", "general", "additive", "none")

Pair = Tuple[str, str]


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def load_tsv(path: str, encoding: str = "utf-8") -> List[Pair]:
    """``source<TAB>target`` lines of a file; every way it can be wrong is a CLIError."""
    text = read_text(path, encoding=encoding, what="TSV file")
    pairs: List[Pair] = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "\t" not in line:
            raise CLIError(f"{path}, line {n}: expected source<TAB>target, found no tab")
        parts = line.split("\t")
        if len(parts) > 2:
            raise CLIError(
                f"{path}, line {n}: expected one tab (source<TAB>target), found {len(parts) - 1}"
            )
        src, tgt = parts[0].strip(), parts[1].strip()
        if not tokenize(src):
            raise CLIError(f"{path}, line {n}: the source sentence is empty")
        if not tokenize(tgt, lower=False):
            raise CLIError(f"{path}, line {n}: the target sentence is empty")
        pairs.append((src, tgt))
    if not pairs:
        raise CLIError(f"{path}: no sentence pairs (expected lines of source<TAB>target)")
    return pairs


def _split(n: int, test_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    k = min(max(int(round(n * test_fraction)), 1), n - 1)
    return np.sort(order[k:]), np.sort(order[:k])


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------

START, END = "<s>", "</s>"


@register_module
class Translator(Seq2Seq):
    """A `crnn.models.Seq2Seq` over word ids that knows its two vocabularies.

    Parameters
    ----------
    src_words, tgt_words : list of str
        The known source words (lower-cased) and target words, in id order.
        Source id 0 and target id 0 are ``<unk>``; target ids 1 and 2 are
        the start and end tokens.
    hidden_size, num_layers, dropout, dtype, seed, backend, cell,
    attention, embedding_dim, attention_size
        As for `Seq2Seq` (``embedding_dim`` must be set or None for one-hot
        words).

    Attributes
    ----------
    src_vocab, tgt_vocab : crnn.data.WordVocab
    start_id, end_id : int
    """

    def __init__(
        self,
        src_words: Sequence[str],
        tgt_words: Sequence[str],
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        dropout: float = 0.0,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        cell: str = "lstm",
        attention: Optional[str] = "general",
        embedding_dim: Optional[int] = 64,
        attention_size: Optional[int] = None,
    ) -> None:
        self.src_vocab = WordVocab(list(src_words), lower=True)
        self.tgt_vocab = WordVocab(list(tgt_words), specials=(START, END), lower=False)
        super().__init__(
            len(self.src_vocab),
            len(self.tgt_vocab),
            hidden_size,
            num_layers,
            nonlinearity=nonlinearity,
            dropout=dropout,
            dtype=dtype,
            seed=seed,
            backend=backend,
            cell=cell,
            attention=attention,
            embedding_dim=embedding_dim,
            attention_size=attention_size,
        )
        self.start_id = self.tgt_vocab.index(START)
        self.end_id = self.tgt_vocab.index(END)
        # The unknown word is never a target (the vocabulary comes from the
        # targets), so training drives its score down anyway; start it low.
        self.head.params["bias"][0] = -10.0

    def config(self) -> Dict[str, Any]:
        cfg = super().config()
        del cfg["src_size"], cfg["tgt_size"]
        cfg.setdefault("attention", None)
        cfg.setdefault("embedding_dim", None)
        return dict(src_words=self.src_vocab.itos[1:], tgt_words=self.tgt_vocab.itos[3:], **cfg)

    # -- encoding -------------------------------------------------------------

    def source_tokens(self, text: str) -> List[str]:
        """The source words of a sentence (lower-cased, `crnn.data.tokenize`)."""
        return tokenize(text, lower=True)

    def encode_sources(self, sentences: Sequence[Sequence[str]]) -> Tuple[np.ndarray, np.ndarray]:
        """Token lists -> padded ids (T, B) (one-hot (T, B, V) without embeddings) and lengths."""
        seqs = [
            self.src_vocab.encode(list(s)) if len(s) else np.zeros(1, np.int64) for s in sentences
        ]
        ids, lengths = pad_batch(seqs, dtype=np.int64)
        if self.embedding_dim is None:
            return self.src_vocab.one_hot(ids, self.dtype), lengths
        return ids, lengths

    def encode_targets(self, sentences: Sequence[Sequence[str]]) -> Tuple[np.ndarray, np.ndarray]:
        """Target token lists -> padded ids (T, B) with the end token after each, and lengths."""
        seqs = [np.append(self.tgt_vocab.encode(list(s)), self.end_id) for s in sentences]
        return pad_batch(seqs, dtype=np.int64)

    # -- translation ----------------------------------------------------------

    def translate_tokens(
        self,
        sentences: Sequence[Sequence[str]],
        beam: int = 1,
        max_len: Optional[int] = None,
        length_penalty: float = 0.6,
        batch_size: int = 64,
    ) -> List[Tuple[List[str], Optional[np.ndarray]]]:
        """Translate tokenised source sentences.

        Each is decoded by `Seq2Seq.beam_search` (``beam=1``: greedy) until
        the end token, or for at most `max_len` words (default: twice the
        source length plus 10).

        Returns
        -------
        list of (target words, attention)
            ``attention`` is (len(words), len(source)): per output word, its
            weight on each source word (None without attention).
        """
        out: List[Tuple[List[str], Optional[np.ndarray]]] = []
        for i in range(0, len(sentences), batch_size):
            part = [list(s) for s in sentences[i : i + batch_size]]
            src, lengths = self.encode_sources(part)
            n = max_len if max_len is not None else 2 * int(lengths.max()) + 10
            res = self.beam_search(
                src,
                beam,
                n,
                self.end_id,
                self.start_id,
                length_penalty=length_penalty,
                src_lengths=lengths,
            )
            for b in range(len(part)):
                words = [self.tgt_vocab.itos[j] for j in res.sequences[b].tolist()]
                att = None if res.attention is None else res.attention[b]
                out.append((words, att))
        return out

    def translate(self, text: str, beam: int = 1) -> str:
        """The translation of one sentence, as text."""
        words, _ = self.translate_tokens([self.source_tokens(text)], beam=beam)[0]
        return detokenize(words)


# --------------------------------------------------------------------------
# Training and scoring
# --------------------------------------------------------------------------


@dataclass
class TranslateResult:
    """What `train_translator` did."""

    model: Translator = field(repr=False)
    epochs: int
    seconds: float
    first_loss: float
    loss: float
    stopped_early: bool


def train_translator(
    pairs: Sequence[Pair],
    *,
    cell: str = "lstm",
    embedding_dim: Optional[int] = 64,
    hidden: int = 128,
    attention: Optional[str] = "general",
    epochs: int = 60,
    seconds: Optional[float] = 60.0,
    lr: float = 0.005,
    batch_size: int = 32,
    seed: int = 0,
    backend: str = "c",
    on_epoch: Any = None,
) -> TranslateResult:
    """Train a `Translator` on ``(source, target)`` sentence pairs.

    Parameters
    ----------
    pairs : sequence of (str, str)
    cell, embedding_dim, hidden, attention
        The model (`Translator`); ``attention=None`` for none,
        ``embedding_dim=None`` for one-hot words.
    epochs : int
        Passes over the pairs, shuffled each time.
    seconds : float or None
        Stop after the epoch that crosses this much time (None: no limit);
        results are deterministic unless it cuts training.
    lr, batch_size
        Adam's learning rate (gradient norm clipped at 5); pairs per step.
    seed : int
    on_epoch : callable(epoch, loss) or None

    Returns
    -------
    TranslateResult
    """
    if not pairs:
        raise ValueError("no training pairs")
    src_tok = [tokenize(s, lower=True) for s, _ in pairs]
    tgt_tok = [tokenize(t, lower=False) for _, t in pairs]
    src_vocab = WordVocab.from_texts(src_tok, lower=True)
    tgt_vocab = WordVocab.from_texts(tgt_tok, lower=False, specials=(START, END))
    model = Translator(
        src_vocab.itos[1:],
        tgt_vocab.itos[3:],
        hidden,
        cell=cell,
        attention=attention,
        embedding_dim=embedding_dim,
        seed=seed,
        backend=backend,
    )
    opt = Adam(model.params, lr=lr, clip_grad_norm=5.0)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    first = loss_avg = math.nan
    done = 0
    stopped = False
    model.train()
    n = len(pairs)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        total = count = 0.0
        for i in range(0, n, batch_size):
            rows = order[i : i + batch_size]
            src, src_len = model.encode_sources([src_tok[j] for j in rows])
            tgt, tgt_len = model.encode_targets([tgt_tok[j] for j in rows])
            tgt_in = model.decoder_inputs(tgt, model.start_id)
            mask = np.arange(tgt.shape[0])[:, None] < tgt_len[None, :]
            model.zero_grad()
            logits = model(src, tgt_in, src_len, tgt_len)
            loss, dlogits = softmax_cross_entropy(logits, tgt, mask=mask)
            model.backward(dlogits)
            opt.step(model.grads)
            k = float(mask.sum())
            total += float(loss) * k
            count += k
        loss_avg = total / max(count, 1.0)
        if epoch == 1:
            first = loss_avg
        done = epoch
        if on_epoch is not None:
            on_epoch(epoch, loss_avg)
        if seconds is not None and time.perf_counter() - t0 >= seconds and epoch < epochs:
            stopped = True
            break
    model.eval()
    return TranslateResult(model, done, time.perf_counter() - t0, first, loss_avg, stopped)


def evaluate(
    model: Translator, pairs: Sequence[Pair], beam: int = 1, length_penalty: float = 0.6
) -> Tuple[BleuScore, float, List[List[str]], List[Optional[np.ndarray]]]:
    """BLEU and exact match of the model's translations of `pairs`.

    Returns ``(bleu, exact_match, hypotheses, attentions)``.
    """
    refs = [tokenize(t, lower=False) for _, t in pairs]
    out = model.translate_tokens(
        [model.source_tokens(s) for s, _ in pairs], beam=beam, length_penalty=length_penalty
    )
    hyps = [w for w, _ in out]
    return corpus_bleu(refs, hyps), exact_match(refs, hyps), hyps, [a for _, a in out]


def copy_baseline(pairs: Sequence[Pair]) -> Tuple[BleuScore, float]:
    """BLEU and exact match of the copy-the-source baseline (the source tokens,
    case kept)."""
    refs = [tokenize(t, lower=False) for _, t in pairs]
    hyps = [tokenize(s, lower=False) for s, _ in pairs]
    return corpus_bleu(refs, hyps), exact_match(refs, hyps)


def format_attention(src: Sequence[str], tgt: Sequence[str], weights: np.ndarray) -> str:
    """The alignment matrix as text: a row per output word, a column per source
    word, each weight in percent (``.`` for under 5%)."""
    width = max([4] + [len(w) + 1 for w in src])
    left = max([6] + [len(w) + 2 for w in tgt])
    lines = [" " * left + "".join(f"{w:>{width}}" for w in src)]
    for i, word in enumerate(tgt):
        cells = []
        for j in range(len(src)):
            v = 100 * float(weights[i, j]) if j < weights.shape[1] else 0.0
            cells.append(f"{'.' if v < 5 else format(v, '.0f'):>{width}}")
        lines.append(f"  {word:<{left - 2}}" + "".join(cells))
    return "\n".join(lines)


def plot_attention(items: List[Tuple[List[str], List[str], np.ndarray]], path: str) -> None:
    """Draw alignment matrices with matplotlib into `path` (a CLIError without it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError(
            '--plot needs matplotlib: pip install "crnn[plot]" (or use '
            "--show-attention alone, which prints the matrix)"
        ) from None
    fig, axes = plt.subplots(1, len(items), figsize=(4.5 * len(items), 4), squeeze=False)
    for ax, (src, tgt, w) in zip(axes[0], items):
        ax.imshow(w[: len(tgt), : len(src)], cmap="Greys", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(src)))
        ax.set_xticklabels(src, rotation=60, ha="right")
        ax.set_yticks(range(len(tgt)))
        ax.set_yticklabels(tgt)
        ax.set_xlabel("source")
        ax.set_ylabel("translation")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise CLIError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _attention_name(text: str) -> str:
    name = text.strip().lower()
    if name not in ATTENTIONS:
        raise argparse.ArgumentTypeError(
            f"unknown attention {text!r}; choose one of: {', '.join(ATTENTIONS)}"
        )
    return name


def register(subparsers: Any) -> None:
    """Add ``crnn translate`` to an argparse subparsers object."""
    d = DEFAULTS
    p = subparsers.add_parser(
        "translate",
        help="translate sentences with an encoder-decoder and attention; BLEU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Train an encoder-decoder with attention (word embeddings -> LSTM encoder; LSTM "
            "decoder attending to the encoder's outputs (additive attention by default) -> "
            "next word) on sentence pairs, and "
            "report corpus BLEU-4 and exact match on held-out pairs next to the "
            "copy-the-source baseline.\n\n"
            "Without --tsv the data are 639 built-in English-German pairs "
            "(crnn.datasets.load_translation: short everyday sentences over a small "
            "vocabulary, written for crnn), split at random."
        ),
        epilog=(
            'examples:\n  crnn translate --predict "The cat is tired." --show-attention\n'
            "  crnn translate --tsv pairs.tsv --beam 4 --save mt.npz\n"
            '  crnn translate --load mt.npz --predict "Where is the station?"'
        ),
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--tsv",
        metavar="FILE",
        help="sentence pairs, one source<TAB>target per line (default: the built-in "
        "English-German pairs)",
    )
    g.add_argument(
        "--test-fraction",
        type=fraction,
        default=d["test_fraction"],
        metavar="F",
        help=f"share of the pairs held out (default {d['test_fraction']})",
    )
    g.add_argument("--encoding", default="utf-8", help="of the TSV file (default utf-8)")
    g = p.add_argument_group("model and training")
    add_cell_option(g, default=d["cell"])
    add_embedding_option(g, default=d["embedding_dim"])
    g.add_argument(
        "--attention",
        type=_attention_name,
        default=d["attention"],
        metavar="SCORE",
        help=f"dot, general (Luong), additive (Bahdanau) or none (default {d['attention']})",
    )
    g.add_argument(
        "--hidden",
        type=positive_int,
        default=d["hidden"],
        metavar="H",
        help=f"hidden units of the encoder and the decoder (default {d['hidden']})",
    )
    g.add_argument(
        "--epochs",
        type=positive_int,
        default=d["epochs"],
        metavar="E",
        help=f"passes over the training pairs (default {d['epochs']})",
    )
    g.add_argument(
        "--seconds",
        type=positive_float,
        default=d["seconds"],
        metavar="S",
        help=f"stop after the epoch that crosses S seconds (default {d['seconds']:g})",
    )
    g.add_argument(
        "--lr",
        type=positive_float,
        default=d["lr"],
        help=f"Adam's learning rate (default {d['lr']:g})",
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=d["batch_size"],
        metavar="B",
        help=f"pairs per step (default {d['batch_size']})",
    )
    g.add_argument(
        "--seed",
        type=nonnegative_int,
        default=d["seed"],
        help="seed of the split, the initialisation and the shuffling (default 0)",
    )
    add_threads_option(g)
    g = p.add_argument_group("translation and output")
    g.add_argument(
        "--beam",
        type=positive_int,
        default=d["beam"],
        metavar="K",
        help="beam search with K hypotheses (default 1: greedy)",
    )
    g.add_argument(
        "--predict",
        action="append",
        default=[],
        metavar="TEXT",
        help="translate this sentence (repeatable)",
    )
    g.add_argument(
        "--show-attention",
        action="store_true",
        help="print the alignment matrix of each --predict (or of the first held-out "
        "pair): the attention of each output word on each source word",
    )
    g.add_argument(
        "--plot",
        metavar="FILE.png",
        nargs="?",
        const="attention.png",
        default=None,
        help="also draw the alignment matrices with matplotlib (default file "
        'attention.png; pip install "crnn[plot]")',
    )
    g.add_argument("--save", metavar="MODEL.npz", help="save the trained model (crnn.save)")
    g.add_argument(
        "--load", metavar="MODEL.npz", help="use a model saved with --save instead of training one"
    )
    g.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (bleu, exact_match, baseline, ...) instead of text",
    )
    p.set_defaults(func=handler)


def _load_translator(path: str) -> Translator:
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, not a model file")
    try:
        model = _load(path)
    except (TypeError, ValueError, OSError, KeyError) as exc:
        raise CLIError(f"{path}: {exc}") from None
    if not isinstance(model, Translator):
        raise CLIError(
            f"{path} holds a {type(model).__name__}, not a model saved by `crnn translate --save`"
        )
    return model


def _describe(model: Translator) -> str:
    e = model.encoder
    inputs = f"embeddings {model.embedding_dim}" if model.embedding_dim else "one-hot words"
    att = f"{model.attention} attention" if model.attention else "no attention"
    return (
        f"Translator: {inputs} -> {e.spec.title} {e.hidden_size} encoder, "
        f"{e.spec.title} {e.hidden_size} decoder with {att} -> Linear "
        f"{model.tgt_size} ({model.num_parameters():,} parameters)"
    )


@one_blas_thread
def handler(args: argparse.Namespace) -> int:
    """Run ``crnn translate``; returns the exit status."""
    apply_threads(args)
    if args.save:
        check_output_path(args.save, "--save")
    if args.plot:
        check_output_path(args.plot, "--plot")
    out = None if args.json else sys.stdout

    def line(msg: str = "") -> None:
        if out is not None:
            print(msg, file=out, flush=True)

    if args.tsv:
        pairs = load_tsv(args.tsv, args.encoding)
        name = args.tsv
    elif args.load:
        pairs, name = [], None
    else:
        pairs = datasets.load_translation()
        name = "built-in English-German pairs"
    train_pairs: List[Pair] = []
    test_pairs: List[Pair] = []
    if pairs:
        if args.load:
            test_pairs = list(pairs)
        else:
            if len(pairs) < 2:
                raise CLIError(f"{name}: only {len(pairs)} pair; need at least 2 to hold one out")
            tr, te = _split(len(pairs), args.test_fraction, args.seed)
            train_pairs = [pairs[i] for i in tr]
            test_pairs = [pairs[i] for i in te]

    summary: Dict[str, Any] = {}
    if args.load:
        model = _load_translator(args.load)
        res = None
    else:
        line(
            f"data      {name}: {len(pairs)} pairs; {len(train_pairs)} for training, "
            f"{len(test_pairs)} held out (a random {args.test_fraction:g})"
        )
        emb = args.embedding_dim or None
        att = None if args.attention == "none" else args.attention
        with Progress(
            args.epochs, desc="training", unit="epochs", mode="off" if args.json else None
        ) as bar:
            res = train_translator(
                train_pairs,
                cell=args.cell,
                embedding_dim=emb,
                hidden=args.hidden,
                attention=att,
                epochs=args.epochs,
                seconds=args.seconds,
                lr=args.lr,
                batch_size=args.batch_size,
                seed=args.seed,
                on_epoch=lambda e, loss: bar.update(1, f"loss {loss:.3f}"),
            )
        model = res.model
        line(
            f"          vocabulary {len(model.src_vocab) - 1} source words, "
            f"{len(model.tgt_vocab) - 3} target words (from the training pairs)"
        )
        line(f"model     {_describe(model)}")
        line(
            f"training  Adam (lr {args.lr:g}, gradient norm clipped at 5), teacher forcing, "
            f"{res.epochs} epochs in {res.seconds:.1f} s"
            f"{' (stopped by --seconds)' if res.stopped_early else ''}; loss "
            f"{res.first_loss:.3f} -> {res.loss:.3f} per word"
        )
        summary.update(
            epochs=res.epochs,
            seconds=round(res.seconds, 3),
            stopped_early=res.stopped_early,
            loss=res.loss,
        )
        if args.save:
            try:
                _save(model, args.save)
            except OSError as exc:
                raise CLIError(f"{args.save}: cannot write it ({exc.strerror or exc})") from None

    decoding = "greedy decoding" if args.beam == 1 else f"beam search (K = {args.beam})"
    shown_attention: List[Tuple[List[str], List[str], np.ndarray]] = []
    if test_pairs:
        bleu, em, hyps, atts = evaluate(model, test_pairs, beam=args.beam)
        bbleu, bem = copy_baseline(test_pairs)
        summary.update(
            data=name,
            n_train=len(train_pairs),
            n_test=len(test_pairs),
            bleu=100 * bleu.bleu,
            exact_match=em,
            bleu_details=bleu.as_dict(),
            baseline=dict(bleu=100 * bbleu.bleu, exact_match=bem),
        )
        line(
            f"held-out  {len(test_pairs)} pairs, {decoding}; corpus BLEU-4 (brevity penalty, "
            f"exp smoothing) on words, case-sensitive:"
        )
        line(f"          {'':<16}{'BLEU':>6}  {'exact match':>11}")
        line(f"          {'translator':<16}{100 * bleu.bleu:6.1f}  {100 * em:10.1f}%")
        line(f"          {'copy the source':<16}{100 * bbleu.bleu:6.1f}  {100 * bem:10.1f}%")
        for (source, ref), hyp in list(zip(test_pairs, hyps))[:4]:
            ok = hyp == tokenize(ref, lower=False)
            line(
                f"  {'ok   ' if ok else 'WRONG'} {source}  ->  {detokenize(hyp)}"
                + ("" if ok else f"   (reference: {ref})")
            )
        if args.show_attention and not args.predict and atts and atts[0] is not None:
            shown_attention.append((model.source_tokens(test_pairs[0][0]), hyps[0], atts[0]))

    preds = []
    if args.predict:
        srcs = [model.source_tokens(t) for t in args.predict]
        outs = model.translate_tokens(srcs, beam=args.beam)
        for text, src, (words, att) in zip(args.predict, srcs, outs):
            unknown = [w for w in src if w not in model.src_vocab]
            preds.append(
                dict(
                    text=text,
                    translation=detokenize(words),
                    tokens=words,
                    unknown_words=unknown,
                    attention=None if att is None else np.round(att, 4).tolist(),
                )
            )
            line(f"predicted {text}  ->  {detokenize(words)}")
            if unknown:
                line(f"          (words the model never saw: {', '.join(unknown)})")
            if args.show_attention and att is not None:
                shown_attention.append((src, words, att))
        summary["predictions"] = preds
    if args.show_attention:
        if model.attention is None:
            line("note      the model has no attention (--attention none): no alignment to show")
        for src, words, att in shown_attention:
            line(
                f"attention of {detokenize(words)!r} (rows) on {' '.join(src)!r} (columns), "
                f"in % (. below 5):"
            )
            line(format_attention(src, words, att))
    if args.plot and shown_attention:
        plot_attention(shown_attention, args.plot)
        line(f"plot      {args.plot}")
    elif args.plot:
        line(
            "note      nothing to plot: give --show-attention with --predict TEXT (and a model "
            "with attention)"
        )
    summary.update(
        cell=model.encoder.spec.name,
        embedding_dim=model.embedding_dim,
        hidden=model.encoder.hidden_size,
        attention=model.attention,
        beam=args.beam,
        seed=args.seed,
    )
    if args.save:
        line(f'saved     {args.save}  (try: crnn translate --load {args.save} --predict "...")')
    if args.json:
        print_json(summary)
    elif not test_pairs and not args.predict:
        print("nothing to do: give --predict TEXT (or --tsv FILE to score the model)")
    return 0
