"""crnn.dask on a real cluster: a distributed.LocalCluster of 2 worker
processes with 1 thread each, shared by the whole module.

- `predict` equals the model's own forward, bitwise, for the same blocks
  (float64), for the layers of every registered cell and for the models;
  `predict_long` equals one forward pass over the whole sequence, bitwise.
- `DataParallel` after N steps with 1, 2 and 3 workers gives the weights of
  single-process training on the same global batches within 1e-12 (float64);
  a worker killed in the middle of a step (its process, SIGKILL) does not
  change the result; resuming from a checkpoint gives the weights of an
  uninterrupted run.
- ``crnn train-text --scheduler`` / ``--workers`` train on a cluster: the
  same training as in one process.

Every wait has a timeout (`WAIT`), so a hang fails instead of hanging.
Skipped when dask[array] or distributed is not installed.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import signal
import threading
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import crnn  # noqa: E402
import crnn.dask as cd  # noqa: E402
from crnn import cells, cli  # noqa: E402
from crnn.losses import mse, softmax_cross_entropy  # noqa: E402
from crnn.models import CharRNN, MLPRegressor, SequenceClassifier, SequenceTagger  # noqa: E402
from crnn.nn import recurrent_layer  # noqa: E402
from crnn.optim import SGD, Adam  # noqa: E402
from crnn.training import TBPTT  # noqa: E402

WAIT = 120  # seconds any one wait may take before the test fails

CELLS = list(cells.REGISTRY)
MODEL_CELLS = [name for name, spec in cells.REGISTRY.items() if not spec.uses_output_size]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as lc:
        with distributed.Client(lc) as client:
            client.wait_for_workers(2, timeout=WAIT)
            yield lc, client


@pytest.fixture
def client(cluster):
    """The module's client, with both workers up (a test may have killed one)."""
    lc, c = cluster
    c.wait_for_workers(2, timeout=WAIT)
    return c


def compute(client, collection):
    """The value of a dask collection (or a list of them), waiting at most WAIT."""
    if isinstance(collection, list):
        futures = client.compute(collection)
        distributed.wait(futures, timeout=WAIT)
        return client.gather(futures)
    return client.compute(collection).result(timeout=WAIT)


def layer(cell, I=4, H=6, **kwargs):  # noqa: E741
    extra = {"output_size": 3} if cells.get(cell).uses_output_size else {}
    return recurrent_layer(cell, I, H, dtype=np.float64, seed=1, **extra, **kwargs)


def by_blocks(f, x, sizes, axis):
    """[f(block, lo, hi)] for consecutive blocks of `sizes` rows of x along `axis`."""
    edges = np.cumsum([0, *sizes])
    return [f(np.take(x, np.arange(lo, hi), axis=axis), lo, hi) for lo, hi in zip(edges, edges[1:])]


# --------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_predict_equals_the_layer_block_by_block(client, cell):
    rng = np.random.default_rng(0)
    m = layer(cell)
    x = rng.standard_normal((9, 12, 4))
    lengths = rng.integers(0, 10, size=12)
    sizes = (3, 4, 5)
    y = compute(client, cd.predict(m, da.from_array(x, chunks=(9, sizes, 4)), lengths))
    want = np.concatenate(
        by_blocks(lambda b, lo, hi: m(b, lengths=lengths[lo:hi])[0], x, sizes, 1), axis=1
    )
    np.testing.assert_array_equal(y, want)
    # Rows are independent: one call on the whole batch agrees to rounding.
    whole = m(x, lengths=lengths)[0]
    assert np.max(np.abs(y - whole)) <= 1e-12 * np.max(np.abs(whole))


@pytest.mark.parametrize(
    "make, x_of, batch_axis, lengths",
    [
        pytest.param(
            lambda: SequenceClassifier(4, 8, 3, bidirectional=True, dtype=np.float64, seed=0),
            lambda rng: rng.standard_normal((7, 10, 4)),
            None,
            True,
            id="classifier-bidirectional",
        ),
        pytest.param(
            lambda: SequenceTagger(4, 8, 3, num_layers=2, dtype=np.float64, seed=0),
            lambda rng: rng.standard_normal((7, 10, 4)),
            None,
            True,
            id="tagger",
        ),
        pytest.param(
            lambda: CharRNN(11, 8, dtype=np.float64, seed=0, cell="lstm", embedding_dim=5),
            lambda rng: rng.integers(0, 11, size=(7, 10)),
            None,
            False,
            id="charrnn-ids",
        ),
        pytest.param(
            lambda: crnn.GRU(4, 8, batch_first=True, dtype=np.float64, seed=0),
            lambda rng: rng.standard_normal((10, 7, 4)),
            None,
            True,
            id="gru-batch-first",
        ),
        pytest.param(
            lambda: MLPRegressor(4, 8, 2, dtype=np.float64, seed=0),
            lambda rng: rng.standard_normal((10, 4)),
            0,
            False,
            id="mlp",
        ),
    ],
)
def test_predict_equals_the_model_block_by_block(client, make, x_of, batch_axis, lengths):
    rng = np.random.default_rng(1)
    m = make()
    x = x_of(rng)
    bax = batch_axis if batch_axis is not None else (0 if getattr(m, "batch_first", False) else 1)
    lens = rng.integers(1, 8, size=10) if lengths else None
    sizes = (4, 6)
    chunks = [-1] * x.ndim
    chunks[bax] = sizes
    y = compute(
        client, cd.predict(m, da.from_array(x, chunks=tuple(chunks)), lens, batch_axis=batch_axis)
    )

    def own(b, lo, hi):
        out = m(b) if lens is None else m(b, lengths=lens[lo:hi])
        return out[0] if isinstance(out, tuple) else out

    parts = by_blocks(own, x, sizes, bax)
    out_axis = next(ax for ax in range(parts[0].ndim) if parts[0].shape[ax] == sizes[0])
    np.testing.assert_array_equal(y, np.concatenate(parts, axis=out_axis))


def test_predict_scatters_the_model_once_to_every_worker(client):
    m = SequenceTagger(4, 200, 3, dtype=np.float64, seed=0)  # ~1.4 MB of weights
    model_bytes = sum(p.nbytes for p in m.params.values())
    x = np.random.default_rng(2).standard_normal((5, 16, 4))
    before = set(client.futures)
    Y = cd.predict(m, da.from_array(x, chunks=(5, 2, 4)))  # 8 blocks
    new = set(client.futures) - before
    assert len(new) == 1, "one future: the model"
    holders = client.who_has()[new.pop()]
    assert set(holders) == set(client.nthreads())
    # The tasks refer to it: the graph is far smaller than one copy of it.
    graph = pickle.dumps(dict(Y.__dask_graph__()))
    assert len(graph) < model_bytes / 4
    # Each block through the model: bitwise. (Not one call on the whole
    # batch: the head's x @ W^T is NumPy's BLAS, whose sums may depend on the
    # row count.)
    per_block = np.concatenate([m(x[:, b : b + 2])[0] for b in range(0, 16, 2)], axis=1)
    np.testing.assert_array_equal(compute(client, Y), per_block)


def test_predict_runs_crnn_on_the_given_threads_per_task(client):
    m = SequenceTagger(4, 8, 3, dtype=np.float64, seed=0)
    X = da.from_array(np.zeros((5, 8, 4)), chunks=(5, 1, 4))  # 8 tasks: both workers
    for threads in (2, 1):
        compute(client, cd.predict(m, X, threads=threads))
        assert set(client.run(crnn.get_num_threads).values()) == {threads}


@pytest.mark.parametrize("cell", CELLS)
def test_predict_long_equals_one_forward_pass(client, cell):
    rng = np.random.default_rng(3)
    m = layer(cell, num_layers=2)
    x = rng.standard_normal((20, 12, 4))
    lengths = np.array([0, 20, 7, 13, 1, 19, 20, 6, 14, 8, 2, 20])
    _, state = m(x[:1])
    h0 = tuple(
        rng.standard_normal(s.shape) for s in (state if isinstance(state, tuple) else [state])
    )
    h0 = h0 if isinstance(state, tuple) else h0[0]
    X = da.from_array(x, chunks=((7, 7, 6), (5, 7), 4))
    Y, h_n = cd.predict_long(m, X, lengths, h0=h0, return_state=True)
    assert Y.chunks == X.chunks[:2] + ((m.num_directions * m.width,),)
    y, s = compute(client, [Y, h_n])
    want_y, want_s = m(x, h0, lengths=lengths)
    np.testing.assert_array_equal(y, want_y)
    for got, want in zip(s if isinstance(s, tuple) else [s], cells_state(want_s)):
        np.testing.assert_array_equal(got, want)


def cells_state(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize(
    "make, x_of",
    [
        pytest.param(
            lambda: crnn.LSTM(4, 6, batch_first=True, dtype=np.float64, seed=0),
            lambda rng: rng.standard_normal((9, 15, 4)),
            id="lstm-batch-first",
        ),
        pytest.param(
            lambda: SequenceTagger(4, 6, 3, cell="gru", dtype=np.float64, seed=0),
            lambda rng: rng.standard_normal((15, 9, 4)),
            id="tagger",
        ),
        pytest.param(
            lambda: CharRNN(11, 6, dtype=np.float64, seed=0),
            lambda rng: rng.integers(0, 11, size=(15, 9)),
            id="charrnn-ids",
        ),
    ],
)
def test_predict_long_models(client, make, x_of):
    rng = np.random.default_rng(4)
    m = make()
    x = x_of(rng)
    bax = 0 if getattr(m, "batch_first", False) else 1
    chunks = [(4, 6, 5), (5, 4)] if bax == 1 else [(5, 4), (4, 6, 5)]
    chunks += [-1] * (x.ndim - 2)
    y = compute(client, cd.predict_long(m, da.from_array(x, chunks=tuple(chunks))))
    np.testing.assert_array_equal(y, m(x)[0])


def test_predict_checks_its_arguments_before_any_task(client):
    m = SequenceTagger(4, 6, 3, dtype=np.float64, seed=0)
    x = np.zeros((6, 4, 4))
    X = da.from_array(x, chunks=(6, 2, 4))
    with pytest.raises(TypeError, match="X must be a dask array"):
        cd.predict(m, x)
    with pytest.raises(
        ValueError, match=r"rows \(axis 1\) only; axis 0 has 2 chunks.*predict_long"
    ):
        cd.predict(m, da.from_array(x, chunks=(3, 2, 4)))
    with pytest.raises(ValueError, match=r"lengths must have shape \(4,\)"):
        cd.predict(m, X, [1, 2])
    with pytest.raises(TypeError, match="float32"):
        cd.predict(m, X.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(T, B, 4\)"):
        cd.predict(m, da.zeros((6, 4, 5), chunks=(6, 2, 5)))
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        cd.predict(m, X, threads=0)
    with pytest.raises(ValueError, match="batch_axis must name an axis"):
        cd.predict(m, X, batch_axis=3)
    clf = SequenceClassifier(4, 6, 3, dtype=np.float64, seed=0)
    with pytest.raises(ValueError, match="returns \\(outputs, state\\)"):
        cd.predict_long(clf, X)
    bi = SequenceTagger(4, 6, 3, bidirectional=True, dtype=np.float64, seed=0)
    with pytest.raises(ValueError, match="unidirectional"):
        cd.predict_long(bi, X)
    with pytest.raises(ValueError, match="chunked along time and rows only"):
        cd.predict_long(m, da.from_array(x, chunks=(3, 2, 2)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(num_layers \* num_directions, 4,"):
        cd.predict_long(m, X, h0=np.zeros((1, 3, 6)))
    with pytest.raises(ValueError, match="h0"):
        cd.predict_long(m, X, h0=np.zeros((1, 4, 5)))  # the model's own check
    mlp = MLPRegressor(4, 5, 2, dtype=np.float64)
    with pytest.raises(TypeError, match="lengths"):
        cd.predict(mlp, da.zeros((8, 4), chunks=(4, 4)), [1] * 8, batch_axis=0)


# --------------------------------------------------------------------------
# DataParallel
# --------------------------------------------------------------------------

V, H, T, B = 7, 10, 8, 9  # the stateful problem: ids over V symbols, B streams


def stream_batches(n, seed=5):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = rng.integers(0, V, size=(T, B))
        y = rng.integers(0, V, size=(T, B))
        mask = rng.random((T, B)) < 0.8 if i % 2 else None
        out.append((x, y, mask))
    return out


def char_model(seed=0):
    return CharRNN(V, H, num_layers=2, cell="lstm", dtype=np.float64, seed=seed)


def optimizer(model):
    return Adam(model.params, lr=1e-2, clip_grad_norm=0.5)


def single_process(batches):
    """The reference: TBPTT in this process on the whole batches."""
    m = char_model()
    tb = TBPTT(m, softmax_cross_entropy, optimizer(m), k=T)
    losses = [tb.step(x, y, mask) for x, y, mask in batches]
    return m, losses, tb.state


def assert_same_weights(got, want, tol=1e-12):
    for name, w in want.params.items():
        err = np.max(np.abs(got.params[name] - w)) / np.max(np.abs(w))
        assert err <= tol, f"{name}: relative difference {err:.2e}"


@pytest.fixture
def three_workers(cluster):
    """The module's cluster grown to 3 workers for one test, then back to 2."""
    lc, c = cluster
    lc.scale(3)
    c.wait_for_workers(3, timeout=WAIT)
    yield c
    lc.scale(2)
    deadline = time.monotonic() + WAIT
    while len(c.nthreads()) != 2:
        assert time.monotonic() < deadline, "the cluster did not shrink back to 2 workers"
        time.sleep(0.1)


@pytest.fixture(params=["inline", "held"])
def weights_travel(request, monkeypatch):
    """Both ways a step's weights reach the workers: inside the shards' tasks
    (small models), or in one task of their own (forced here)."""
    if request.param == "held":
        monkeypatch.setattr(cd._data_parallel, "INLINE_WEIGHTS_BYTES", 0)
    return request.param


@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_data_parallel_equals_single_process(request, client, n_workers, weights_travel):
    if n_workers == 3:
        client = request.getfixturevalue("three_workers")
    batches = stream_batches(5)
    want, want_losses, want_state = single_process(batches)
    m = char_model()
    with distributed.get_task_stream(client) as ts:
        dp = cd.DataParallel(
            m,
            softmax_cross_entropy,
            optimizer(m),
            client,
            shards=n_workers,
            stateful=True,
            timeout=WAIT,
        )
        with dp:
            losses = [dp.step(x, y, mask) for x, y, mask in batches]
    assert_same_weights(m, want)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-12)
    for got, w in zip(dp.state, want_state):
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-14)
    # Every worker computed shards: the work was really spread.
    shard_workers = {t["worker"] for t in ts.data if "-shard-" in str(t["key"])}
    assert len(shard_workers) == n_workers


def test_data_parallel_many_to_one_with_lengths(client):
    rng = np.random.default_rng(6)

    def model():
        return SequenceClassifier(3, 8, 4, dtype=np.float64, seed=2)

    batches = [
        (rng.standard_normal((6, 10, 3)), rng.integers(0, 4, size=10), rng.integers(0, 7, 10))
        for _ in range(4)
    ]
    want = model()
    opt = SGD(want.params, lr=0.1, momentum=0.9)
    for x, y, lengths in batches:
        want.zero_grad()
        loss, d = softmax_cross_entropy(want(x, lengths=lengths), y)
        want.backward(d)
        opt.step(want.grads)
    m = model()
    with cd.DataParallel(
        m, softmax_cross_entropy, SGD(m.params, lr=0.1, momentum=0.9), client, timeout=WAIT
    ) as dp:
        last = [dp.step(x, y, lengths=lengths) for x, y, lengths in batches][-1]
    assert_same_weights(m, want)
    assert last == pytest.approx(loss, rel=1e-12)


def stall_once(pred, y, reduction="mean", mask=None, *, armed, marker):
    """softmax_cross_entropy; once `armed` exists, the first call anywhere
    writes its process id to `marker` and stalls (until the test kills it)."""
    if os.path.exists(armed):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
            time.sleep(WAIT)
    return softmax_cross_entropy(pred, y, mask=mask, reduction=reduction)


def test_a_worker_killed_mid_step_changes_nothing(client, tmp_path, weights_travel):
    batches = stream_batches(3, seed=7)
    want, want_losses, _ = single_process(batches)
    armed, marker = tmp_path / "armed", tmp_path / "stalled-worker"
    m = char_model()
    loss_fn = functools.partial(stall_once, armed=str(armed), marker=str(marker))
    dp = cd.DataParallel(m, loss_fn, optimizer(m), client, stateful=True, timeout=WAIT)
    losses = [dp.step(*batches[0])]
    armed.touch()
    done = {}

    def second_step():
        done["loss"] = dp.step(*batches[1])

    stepping = threading.Thread(target=second_step, daemon=True)
    stepping.start()
    deadline = time.monotonic() + WAIT
    while not (marker.exists() and marker.read_text().endswith("\n")):
        assert time.monotonic() < deadline, "no shard reached the loss"
        time.sleep(0.01)
    pid = int(marker.read_text())
    assert pid in client.run(os.getpid).values()
    os.kill(pid, signal.SIGKILL)
    stepping.join(WAIT)
    assert not stepping.is_alive(), "the step did not complete after its worker was killed"
    assert pid not in client.run(os.getpid).values()
    losses.append(done["loss"])
    losses.append(dp.step(*batches[2]))
    dp.close()
    assert_same_weights(m, want)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-12)


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(client, tmp_path):
    batches = stream_batches(6, seed=8)
    m = char_model()
    with cd.DataParallel(
        m,
        softmax_cross_entropy,
        optimizer(m),
        client,
        stateful=True,
        checkpoint_dir=tmp_path,
        checkpoint_every=2,
        timeout=WAIT,
    ) as dp:
        for x, y, mask in batches:
            dp.step(x, y, mask)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "latest",
        "step-00000004",
        "step-00000006",
    ]
    np.testing.assert_array_equal(
        crnn.load(tmp_path / "step-00000006" / "model.npz").params["head.weight"],
        m.params["head.weight"],
    )

    resumed = char_model(seed=99)  # other weights: all of them must come from the checkpoint
    with cd.DataParallel(
        resumed, softmax_cross_entropy, optimizer(resumed), client, stateful=True, timeout=WAIT
    ) as dp2:
        assert dp2.load_checkpoint(tmp_path / "step-00000004") == 4
        for x, y, mask in batches[4:]:
            dp2.step(x, y, mask)
    for name, w in m.params.items():
        np.testing.assert_array_equal(resumed.params[name], w, err_msg=name)
    for got, want in zip(dp2.state, dp.state):
        np.testing.assert_array_equal(got, want)


def test_data_parallel_checks_its_arguments(client):
    m = char_model()
    opt = optimizer(m)
    dp = cd.DataParallel(m, softmax_cross_entropy, opt, client, shards=2, timeout=WAIT)
    x, y, _ = stream_batches(1)[0]
    with pytest.raises(ValueError, match="1 rows, fewer than the 2 shards"):
        dp.step(x[:, :1], y[:, :1])
    with pytest.raises(ValueError, match=f"y must have the batch's {B} rows on axis 1"):
        dp.step(x, y[:, :-1])
    with pytest.raises(ValueError, match="optimizer must be a crnn optimizer over model.params"):
        cd.DataParallel(m, softmax_cross_entropy, optimizer(char_model()), client)
    bi = SequenceTagger(3, 4, 2, bidirectional=True, dtype=np.float64)
    with pytest.raises(ValueError, match="unidirectional"):
        cd.DataParallel(bi, mse, Adam(bi.params), client, stateful=True)
    with pytest.raises(ValueError, match="checkpoint_dir and checkpoint_every together"):
        cd.DataParallel(m, softmax_cross_entropy, opt, client, checkpoint_every=3)
    dp.close()
    with pytest.raises(RuntimeError, match="closed"):
        dp.step(x, y)


# --------------------------------------------------------------------------
# Checkpoint files (no cluster)
# --------------------------------------------------------------------------


def test_checkpoint_round_trip_and_atomicity(tmp_path):
    m = char_model()
    opt = SGD(m.params, lr=0.1, momentum=0.9)
    x, y, _ = stream_batches(1)[0]
    tb = TBPTT(m, softmax_cross_entropy, opt, k=T)
    tb.step(x, y)
    first = cd.save_checkpoint(tmp_path, m, opt, step=1, state=tb.state)
    tb.step(x, y)
    cd.save_checkpoint(tmp_path, m, opt, step=2, state=tb.state)
    # A checkpoint being written when the run died: never read.
    (tmp_path / "step-00000003.partial").mkdir()
    assert cd.latest_checkpoint(tmp_path) == str(tmp_path / "step-00000002")

    fresh = char_model(seed=5)
    fresh_opt = SGD(fresh.params, lr=0.5, momentum=0.9)
    step, state = cd.load_checkpoint(tmp_path, fresh, fresh_opt)
    assert step == 2
    for name, w in m.params.items():
        np.testing.assert_array_equal(fresh.params[name], w)
    assert fresh_opt.lr == 0.1 and fresh_opt.num_steps == 2
    assert isinstance(state, tuple) and len(state) == 2  # the LSTM's (h, c)
    for got, want in zip(state, tb.state):
        np.testing.assert_array_equal(got, want)
    # The same next step from the restored run and the original.
    tb2 = TBPTT(fresh, softmax_cross_entropy, fresh_opt, k=T)
    tb2.state = state
    tb2.step(x, y)
    tb.step(x, y)
    for name, w in m.params.items():
        np.testing.assert_array_equal(fresh.params[name], w)

    # keep=2: the third checkpoint removes the first.
    cd.save_checkpoint(tmp_path, m, opt, step=4, state=None)
    assert not os.path.exists(first)
    step, state = cd.load_checkpoint(tmp_path, fresh, fresh_opt)
    assert (step, state) == (4, None)


def test_checkpoint_refuses_what_does_not_match(tmp_path):
    m = char_model()
    opt = Adam(m.params)
    cd.save_checkpoint(tmp_path, m, opt, step=3)
    other = SequenceTagger(3, 4, 2, dtype=np.float64)
    with pytest.raises(ValueError, match="holds a CharRNN, not a SequenceTagger"):
        cd.load_checkpoint(tmp_path, other, Adam(other.params))
    target = char_model(seed=7)
    before = target.state_dict()
    with pytest.raises(ValueError, match="'Adam' optimizer, not 'SGD'"):
        cd.load_checkpoint(tmp_path, target, SGD(target.params, lr=0.1))
    for name, w in before.items():  # nothing changed
        np.testing.assert_array_equal(target.params[name], w)
    with pytest.raises(FileNotFoundError, match="holds no crnn checkpoint"):
        cd.load_checkpoint(tmp_path / "nothing", m, opt)


# --------------------------------------------------------------------------
# crnn train-text on a cluster
# --------------------------------------------------------------------------

TEXT = "the cat sat on the mat. the dog ate the bone. " * 20


def train_text(tmp_path, capsys, *extra):
    """`crnn train-text` in this process (no interpreter to start); its JSON summary."""
    (tmp_path / "t.txt").write_text(TEXT)
    args = ["train-text", str(tmp_path / "t.txt"), "--epochs", "2", "--hidden", "16"]
    args += ["--seq-len", "10", "--batch-size", "6", "--json", *map(str, extra)]
    capsys.readouterr()
    assert cli.main(args) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_train_text_on_a_cluster_is_the_same_training(client, tmp_path, capsys):
    address = client.scheduler.address
    alone = train_text(tmp_path, capsys, "--out", tmp_path / "alone.npz")
    on_cluster = train_text(
        tmp_path, capsys, "--scheduler", address, "--out", tmp_path / "cluster.npz"
    )
    assert on_cluster["workers"] == 2 and on_cluster["scheduler"] == address
    assert on_cluster["first_loss"] == pytest.approx(alone["first_loss"], rel=1e-6)
    # float32 training: the two sums differ in their last bits only.
    assert on_cluster["loss"] == pytest.approx(alone["loss"], rel=1e-4)
    a, c = crnn.load(tmp_path / "alone.npz"), crnn.load(tmp_path / "cluster.npz")
    for name, w in a.params.items():
        np.testing.assert_allclose(c.params[name], w, rtol=1e-3, atol=1e-5, err_msg=name)


def test_train_text_workers_starts_its_own_cluster(tmp_path, capsys):
    summary = train_text(tmp_path, capsys, "--workers", "1", "--out", tmp_path / "one.npz")
    assert summary["workers"] == 1 and summary["scheduler"] is None
    assert summary["loss"] < summary["first_loss"]


def test_train_text_cluster_options_are_checked(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(TEXT)
    t = str(tmp_path / "t.txt")
    assert cli.main(["train-text", t, "--workers", "2", "--scheduler", "tcp://h:1"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert cli.main(["train-text", t, "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
