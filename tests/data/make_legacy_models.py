"""Write tests/data/legacy_models/: model files saved by crnn *before* the
models took ``embedding_dim=`` and ``attention=`` (written at commit 8e58a75).

Run once with that crnn to (re)create the files; tests/test_seq_models.py loads
them with the current crnn and checks the loaded models compute what the old
ones did. Each ``<name>.npz`` is a plain `crnn.save` file; ``expected.npz``
holds, per model, the inputs and the outputs the saving crnn computed.
"""

import os

import numpy as np

import crnn
from crnn.models import CharModel, CharRNN, Seq2Seq, SequenceClassifier, SequenceTagger

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "legacy_models")


def main() -> None:
    os.makedirs(HERE, exist_ok=True)
    rng = np.random.default_rng(0)
    f64 = np.float64
    expected = {}
    models = {
        "classifier_lstm": SequenceClassifier(
            3, 4, 2, bidirectional=True, dtype=f64, seed=1, cell="lstm"
        ),
        "tagger_gru": SequenceTagger(3, 4, 2, num_layers=2, dtype=f64, seed=2, cell="gru"),
        "charrnn_rnn": CharRNN(5, 4, dtype=f64, seed=3),
        "charmodel_lstm": CharModel("abcd", 4, dtype=f64, seed=4, cell="lstm"),
        "seq2seq_rnn": Seq2Seq(3, 5, 4, dtype=f64, seed=5),
        "seq2seq_lstm": Seq2Seq(3, 5, 4, num_layers=2, dtype=f64, seed=6, cell="lstm"),
    }
    for name, m in models.items():
        crnn.save(m, os.path.join(HERE, f"{name}.npz"))
        if isinstance(m, CharRNN):
            x = rng.integers(0, m.vocab_size, size=(4, 2))
            y = m(x)[0]
        elif isinstance(m, Seq2Seq):
            x = rng.standard_normal((4, 2, 3))
            tgt = m.decoder_inputs(rng.integers(0, 5, size=(3, 2)), start_id=4)
            expected[f"{name}.tgt_in"] = tgt
            y = m(x, tgt, src_lengths=[4, 2])
            expected[f"{name}.greedy"] = m.greedy_decode(x, 3, 4, src_lengths=[4, 2])
        else:
            x = rng.standard_normal((4, 2, 3))
            y = m(x, lengths=[4, 3])
            y = y[0] if isinstance(y, tuple) else y
        expected[f"{name}.x"] = x
        expected[f"{name}.y"] = y
    np.savez(os.path.join(HERE, "expected.npz"), **expected)


if __name__ == "__main__":
    main()
