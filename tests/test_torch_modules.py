"""crnn.torch against torch.nn (skipped when torch is not installed).

- PyTorch's own module tests: every sample of ``module_db``'s entries for
  nn.RNN, nn.LSTM, nn.GRU, nn.RNNCell, nn.LSTMCell and nn.GRUCell (needs the
  ``expecttest`` package), in training and evaluation mode, float32 and
  float64: outputs, and the gradients of the input, the states and every
  parameter, against torch.nn's module with the same state_dict. The
  samples crnn does not run (LSTM proj_size) must reach torch's own
  implementation; the others must run on crnn's kernels.
- Beyond the samples: batched and batch_first inputs, given states,
  PackedSequence (unsorted, bidirectional), dropout between layers (the
  masks torch draws for the same seed), partial upstream gradients,
  no_grad / inference_mode.
- The boundaries: fallbacks (bfloat16, proj_size, meta device, autocast,
  tracing), torch's errors for bad arguments, no double backward, in-place
  changes refused, memory shared with NumPy.
- `convert` / `to_torch` round trips, and one crnn.torch class per registry
  cell that has a torch module.
"""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import crnn  # noqa: E402
import crnn.torch as ct  # noqa: E402
from crnn import cells  # noqa: E402
from helpers import assert_rel_close  # noqa: E402

# float64: array-wise relative error (helpers.assert_rel_close); float32:
# element-wise |a - b| <= 1e-5 + 1e-5 |b| (torch's own float32 tests use
# atol 1e-5), since a small gradient can cancel to a few ulps of its terms.
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
DTYPES = [torch.float32, torch.float64]
LAYERS = ("RNN", "LSTM", "GRU")
CELLS = ("RNNCell", "LSTMCell", "GRUCell")


@pytest.fixture(autouse=True, scope="module")
def _torch_on_one_thread():
    """The problems are tiny: torch's intra-op threads only add waits on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def crnn_calls(monkeypatch):
    """Counts the calls that reach crnn's kernels (crnn.forward) from crnn.torch."""
    calls = []
    real = ct._crnn_forward

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    monkeypatch.setattr(ct, "_crnn_forward", spy)
    return calls


# --------------------------------------------------------------------------
# Comparing a crnn.torch module with torch.nn's
# --------------------------------------------------------------------------


def _tensors(obj):
    """The tensors of a nested result (tuples, PackedSequences), in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, torch.nn.utils.rnn.PackedSequence):
        return [obj.data] + _tensors((obj.batch_sizes, obj.sorted_indices, obj.unsorted_indices))
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    return []


def _clone_inputs(obj):
    """Leaf copies of the tensors of a nested argument, keeping requires_grad."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone().requires_grad_(obj.requires_grad)
    if isinstance(obj, torch.nn.utils.rnn.PackedSequence):
        return type(obj)(_clone_inputs(obj.data), *obj[1:])
    if isinstance(obj, tuple):
        return tuple(_clone_inputs(o) for o in obj)
    return obj


def _run(module, args, upstream_seed=0, upstream=None):
    """(output tensors, gradients by name) of module(*args) for random upstream
    gradients on the float outputs (`upstream` picks which of them get one)."""
    args = _clone_inputs(args)
    result = module(*args)
    outs = _tensors(result)
    leaves = {f"input{i}": t for i, t in enumerate(_tensors(args)) if t.requires_grad}
    leaves.update({name: p for name, p in module.named_parameters()})
    gen = torch.Generator().manual_seed(upstream_seed)
    pairs = [
        (o, torch.randn(o.shape, generator=gen, dtype=o.dtype))
        for i, o in enumerate(outs)
        if o.is_floating_point() and (upstream is None or i in upstream)
    ]
    grads = {}
    if pairs and any(o.requires_grad for o, _ in pairs):
        live = [(o, g) for o, g in pairs if o.requires_grad]
        got = torch.autograd.grad(
            [o for o, _ in live], list(leaves.values()), [g for _, g in live], allow_unused=True
        )
        grads = {
            name: torch.zeros_like(leaf) if g is None else g
            for (name, leaf), g in zip(leaves.items(), got)
        }
    return outs, grads


def _assert_close(a, b, dtype, name):
    if dtype == torch.float64:
        assert_rel_close(a.detach().numpy(), b.detach().numpy(), tol=TOL[dtype], name=name)
    else:
        tol = TOL[dtype]
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=lambda m: f"{name}: {m}")


def _assert_same_results(mine, theirs, dtype, ctx):
    (outs_m, grads_m), (outs_t, grads_t) = mine, theirs
    assert len(outs_m) == len(outs_t), ctx
    for i, (a, b) in enumerate(zip(outs_m, outs_t)):
        assert a.shape == b.shape and a.dtype == b.dtype, f"{ctx} output {i}"
        if a.is_floating_point():
            _assert_close(a, b, dtype, f"{ctx} out{i}")
        else:
            assert torch.equal(a, b), f"{ctx} output {i}"
    assert grads_m.keys() == grads_t.keys(), ctx
    for name in grads_t:
        _assert_close(grads_m[name], grads_t[name], dtype, f"{ctx} d{name}")


def _pair(torch_class, *args, dtype=torch.float64, seed=0, **kwargs):
    """(crnn.torch module, torch.nn module) with the same parameters."""
    torch.manual_seed(seed)
    theirs = torch_class(*args, **kwargs).to(dtype)
    mine = ct._CRNN_CLASS[torch_class](*args, **kwargs).to(dtype)
    mine.load_state_dict(theirs.state_dict())
    return mine, theirs


def _crnn_runs_sample(module):
    return getattr(module, "proj_size", 0) == 0


def _expected_calls(module):
    """crnn.forward calls one forward of `module` makes: one per layer and direction."""
    return getattr(module, "num_layers", 1) * (2 if getattr(module, "bidirectional", False) else 1)


# --------------------------------------------------------------------------
# PyTorch's module_db samples
# --------------------------------------------------------------------------


def _module_db_cases():
    pytest.importorskip("expecttest")  # common_modules imports it
    from torch.testing._internal.common_modules import module_db

    wanted = tuple(getattr(torch.nn, n) for n in LAYERS + CELLS)
    cases = []
    for info in module_db:
        if info.module_cls not in wanted:
            continue
        for dtype in DTYPES:
            for training in (True, False):
                samples = info.module_inputs_func(
                    info, device="cpu", dtype=dtype, requires_grad=True, training=training
                )
                for i, sample in enumerate(samples):
                    name = f"{info.name}-{'train' if training else 'eval'}-{str(dtype)[6:]}-{i}"
                    cases.append(pytest.param(info.module_cls, sample, training, dtype, id=name))
    return cases


try:
    MODULE_DB_CASES = _module_db_cases()
except pytest.skip.Exception:  # expecttest missing: one skipped test says so
    MODULE_DB_CASES = [
        pytest.param(None, None, None, None, marks=pytest.mark.skip("no expecttest"))
    ]


def test_module_db_has_the_expected_entries():
    pytest.importorskip("expecttest")
    modules = {p.values[0] for p in MODULE_DB_CASES}
    assert modules == {getattr(torch.nn, n) for n in LAYERS + CELLS}
    assert len(MODULE_DB_CASES) >= 6 * 2 * 2


@pytest.mark.parametrize("torch_class, sample, training, dtype", MODULE_DB_CASES)
def test_module_db_sample(torch_class, sample, training, dtype, crnn_calls):
    c = sample.constructor_input
    mine, theirs = _pair(torch_class, *c.args, dtype=dtype, **c.kwargs)
    mine.train(training)
    theirs.train(training)
    args = sample.forward_input.args
    assert not sample.forward_input.kwargs

    got = _run(mine, args)
    calls = len(crnn_calls)
    want = _run(theirs, args)

    _assert_same_results(got, want, dtype, torch_class.__name__)
    assert calls == (_expected_calls(mine) if _crnn_runs_sample(mine) else 0)


# --------------------------------------------------------------------------
# Layers beyond the samples
# --------------------------------------------------------------------------

LAYER_CONFIGS = [
    dict(num_layers=1),
    dict(num_layers=2, bias=False),
    dict(num_layers=3, bidirectional=True),
    dict(num_layers=2, bidirectional=True, batch_first=True),
]


def _layer_id(kwargs):
    return "-".join(f"{k}={v}" for k, v in kwargs.items())


def _states(name, L, B, H, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    shape = (L, B, H) if B is not None else (L, H)
    h = torch.randn(shape, generator=gen, dtype=dtype).requires_grad_(True)
    if name == "LSTM":
        return (h, torch.randn(shape, generator=gen, dtype=dtype).requires_grad_(True))
    return h


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("config", LAYER_CONFIGS, ids=_layer_id)
@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("with_state", [False, True], ids=["no_hx", "hx"])
def test_layer_batched(name, config, dtype, with_state, crnn_calls):
    I, H, T, B = 3, 4, 5, 6
    mine, theirs = _pair(getattr(torch.nn, name), I, H, dtype=dtype, **config)
    gen = torch.Generator().manual_seed(1)
    shape = (B, T, I) if config.get("batch_first") else (T, B, I)
    x = torch.randn(shape, generator=gen, dtype=dtype).requires_grad_(True)
    D = 2 if config.get("bidirectional") else 1
    args = (x, _states(name, config["num_layers"] * D, B, H, dtype, 2)) if with_state else (x,)

    got = _run(mine, args)
    assert len(crnn_calls) == config["num_layers"] * D
    _assert_same_results(got, _run(theirs, args), dtype, name)


@pytest.mark.parametrize("upstream", [(0,), (1,), (1, 2)], ids=["out", "h_n", "states"])
@pytest.mark.parametrize("name", LAYERS)
def test_layer_partial_upstream(name, upstream):
    """Only some outputs reach the loss: the others' gradients are None to crnn."""
    if name != "LSTM" and upstream == (1, 2):
        upstream = (1,)
    mine, theirs = _pair(getattr(torch.nn, name), 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    got = _run(mine, (x,), upstream=upstream)
    want = _run(theirs, (x,), upstream=upstream)
    _assert_same_results(got, want, torch.float64, name)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("with_state", [False, True], ids=["no_hx", "hx"])
def test_layer_packed_sequence(name, bidirectional, dtype, with_state, crnn_calls):
    """Unsorted lengths: states in the caller's order, outputs packed as torch packs them."""
    I, H, T = 3, 4, 7
    lengths = torch.tensor([4, 7, 1, 5, 7])
    mine, theirs = _pair(
        getattr(torch.nn, name), I, H, num_layers=2, bidirectional=bidirectional, dtype=dtype
    )
    x = torch.randn(T, len(lengths), I, dtype=dtype, generator=torch.Generator().manual_seed(3))
    packed = pack_padded_sequence(x.requires_grad_(True), lengths, enforce_sorted=False)
    D = 2 if bidirectional else 1
    args = (packed,)
    if with_state:
        args = (packed, _states(name, 2 * D, len(lengths), H, dtype, 4))

    got = _run(mine, args)
    assert len(crnn_calls) == 2 * D
    want = _run(theirs, args)
    _assert_same_results(got, want, dtype, name)
    # Padded back, the outputs past each length are zero in both.
    out, lens = pad_packed_sequence(mine(*_clone_inputs(args))[0])
    assert torch.equal(lens, lengths)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("name", LAYERS)
def test_layer_dropout_draws_torch_masks(name, packed):
    """In training mode the masks between layers are the ones torch draws for
    the same seed (float64: torch's own kernels there use ATen's layer stack)."""
    p = 0.4
    mine, theirs = _pair(getattr(torch.nn, name), 3, 4, num_layers=3, dropout=p, bidirectional=True)
    x = torch.randn(6, 4, 3, dtype=torch.float64, requires_grad=True)
    args = (pack_padded_sequence(x, torch.tensor([6, 5, 3, 2])),) if packed else (x,)
    torch.manual_seed(10)
    got = _run(mine, args)
    torch.manual_seed(10)
    want = _run(theirs, args)
    _assert_same_results(got, want, torch.float64, name)
    # The dropout does act: another seed gives other outputs.
    torch.manual_seed(11)
    other = _run(mine, args)
    assert not torch.allclose(other[0][0], got[0][0])
    # ... and none in evaluation mode.
    mine.eval()
    theirs.eval()
    _assert_same_results(_run(mine, args), _run(theirs, args), torch.float64, name)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("name", LAYERS + CELLS)
def test_without_autograd(name, mode, crnn_calls):
    mine, theirs = _pair(getattr(torch.nn, name), 3, 4)
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    if name in CELLS:
        x = x[0]
    context = torch.no_grad if mode == "no_grad" else torch.inference_mode
    with context():
        got, want = mine(x), theirs(x)
    assert crnn_calls
    for a, b in zip(_tensors(got), _tensors(want)):
        assert not a.requires_grad
        assert_rel_close(a.numpy(), b.numpy(), tol=TOL[torch.float64])


# --------------------------------------------------------------------------
# Cells beyond the samples
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("with_state", [False, True], ids=["no_hx", "hx"])
def test_cell_batched(name, bias, dtype, with_state, crnn_calls):
    kwargs = dict(bias=bias)
    if name == "RNNCell":
        kwargs["nonlinearity"] = "relu"
    mine, theirs = _pair(getattr(torch.nn, name), 3, 4, dtype=dtype, **kwargs)
    x = torch.randn(6, 3, dtype=dtype, requires_grad=True)
    args = (x,)
    if with_state:
        state = _states(name[:-4], 1, 6, 4, dtype, 5)
        args = (x, tuple(s[0] for s in state) if name == "LSTMCell" else state[0])
    got = _run(mine, args)
    assert len(crnn_calls) == 1
    _assert_same_results(got, _run(theirs, args), dtype, name)


def test_cell_steps_through_a_sequence():
    """A loop of cell steps (gradients through every step) matches torch's."""
    mine, theirs = _pair(torch.nn.LSTMCell, 3, 4)

    class Loop(torch.nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.cell = cell

        def forward(self, xs):
            h = c = torch.zeros(xs.size(1), 4, dtype=xs.dtype)
            outs = []
            for x in xs:
                h, c = self.cell(x, (h, c))
                outs.append(h)
            return torch.stack(outs)

    x = torch.randn(7, 2, 3, dtype=torch.float64, requires_grad=True)
    _assert_same_results(
        _run(Loop(mine), (x,)), _run(Loop(theirs), (x,)), torch.float64, "LSTMCell"
    )


# --------------------------------------------------------------------------
# Where torch runs instead, and torch's errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", LAYERS + CELLS)
def test_bfloat16_runs_on_torch(name, crnn_calls):
    mine, theirs = _pair(getattr(torch.nn, name), 3, 4, dtype=torch.bfloat16)
    x = torch.randn(5, 2, 3).to(torch.bfloat16)
    if name in CELLS:
        x = x[0]
    got, want = _tensors(mine(x)), _tensors(theirs(x))
    assert not crnn_calls
    for a, b in zip(got, want):
        assert a.dtype == torch.bfloat16 and torch.equal(a, b)


def test_proj_size_runs_on_torch(crnn_calls):
    mine, theirs = _pair(torch.nn.LSTM, 3, 4, proj_size=2, num_layers=2)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    _assert_same_results(_run(mine, (x,)), _run(theirs, (x,)), torch.float64, "proj")
    assert not crnn_calls


@pytest.mark.parametrize("name", LAYERS + CELLS)
def test_meta_device_runs_on_torch(name, crnn_calls):
    torch_class = getattr(torch.nn, name)
    mine = ct._CRNN_CLASS[torch_class](3, 4, device="meta")
    theirs = torch_class(3, 4, device="meta")
    x = torch.empty(5, 2, 3, device="meta")
    if name in CELLS:
        x = x[0]
    got, want = _tensors(mine(x)), _tensors(theirs(x))
    assert not crnn_calls
    assert [t.shape for t in got] == [t.shape for t in want]
    assert all(t.device.type == "meta" for t in got)


def test_autocast_and_tracing_run_on_torch(crnn_calls):
    mine, theirs = _pair(torch.nn.GRU, 3, 4, dtype=torch.float32)
    x = torch.randn(5, 2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = mine(x)[0], theirs(x)[0]
    assert got.dtype == want.dtype and torch.equal(got, want)
    traced = torch.jit.trace(mine, (x,), check_trace=False)
    assert not crnn_calls
    assert "aten::gru" in str(traced.graph)
    _assert_close(traced(x)[0], theirs(x)[0], torch.float32, "traced")


def _error(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return type(exc), str(exc)
    return None


BAD_LAYER_CALLS = {
    "4d_input": lambda: (torch.zeros(2, 3, 4, 3),),
    "input_size": lambda: (torch.zeros(5, 2, 7),),
    "hx_batch": lambda: (torch.zeros(5, 2, 3), torch.zeros(1, 3, 4)),
    "hx_dims": lambda: (torch.zeros(5, 2, 3), torch.zeros(2, 4)),
    "unbatched_hx_dims": lambda: (torch.zeros(5, 3), torch.zeros(1, 1, 4)),
    "dtype_mismatch": lambda: (torch.zeros(5, 2, 3, dtype=torch.float32),),
}


@pytest.mark.parametrize("bad", list(BAD_LAYER_CALLS))
@pytest.mark.parametrize("name", LAYERS)
def test_layer_errors_are_torchs(name, bad):
    mine, theirs = _pair(getattr(torch.nn, name), 3, 4)
    args = BAD_LAYER_CALLS[bad]()
    if name == "LSTM" and len(args) == 2:
        args = (args[0], (args[1], args[1]))
    args = tuple(a.double() if bad != "dtype_mismatch" and torch.is_tensor(a) else a for a in args)
    args = tuple(tuple(s.double() for s in a) if isinstance(a, tuple) else a for a in args)
    want = _error(lambda: theirs(*args))
    assert want is not None
    assert _error(lambda: mine(*args)) == want


BAD_CELL_CALLS = {
    "3d_input": lambda: (torch.zeros(2, 3, 3),),
    "input_size": lambda: (torch.zeros(2, 5),),
    "hx_batch": lambda: (torch.zeros(2, 3), torch.zeros(3, 4)),
    "unbatched_2d_hx": lambda: (torch.zeros(3), torch.zeros(1, 4)),
}


@pytest.mark.parametrize("bad", list(BAD_CELL_CALLS))
@pytest.mark.parametrize("name", CELLS)
def test_cell_errors_are_torchs(name, bad):
    mine, theirs = _pair(getattr(torch.nn, name), 3, 4)
    args = tuple(a.double() for a in BAD_CELL_CALLS[bad]())
    if name == "LSTMCell" and len(args) == 2:
        args = (args[0], (args[1], args[1]))
    want = _error(lambda: theirs(*args))
    assert want is not None
    assert _error(lambda: mine(*args)) == want


@pytest.mark.parametrize("name", LAYERS)
def test_double_backward_is_refused(name):
    mine, theirs = _pair(getattr(torch.nn, name), 3, 4)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    (dx,) = torch.autograd.grad(mine(x)[0].pow(2).sum(), x, create_graph=True)
    (want,) = torch.autograd.grad(theirs(x)[0].pow(2).sum(), x, create_graph=True)
    assert_rel_close(dx.detach().numpy(), want.detach().numpy(), tol=1e-10)
    assert dx.requires_grad  # a silent constant would make the penalty's gradient wrong
    with pytest.raises(RuntimeError, match="crnn.torch.*double backward"):
        dx.pow(2).sum().backward()


def test_output_modified_in_place_is_refused():
    mine, _ = _pair(torch.nn.GRU, 3, 4)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    out, h = mine(x)
    loss = (out * 2).sum()
    out.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_memory_is_shared_with_numpy(crnn_calls):
    """Contiguous inputs and the weights reach crnn as views; the output comes
    back over crnn's array (the final states are stacked into (L*D, B, H))."""
    mine, _ = _pair(torch.nn.LSTM, 3, 4)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    out, (h, c) = mine(x)
    (args, kwargs, (out_a, states_a, cache)) = crnn_calls[0]
    assert np.shares_memory(args[1], x.detach().numpy())
    assert np.shares_memory(args[3]["weight_ih"], mine.weight_ih_l0.detach().numpy())
    assert np.shares_memory(out.detach().numpy(), out_a)
    assert torch.equal(h[0], torch.from_numpy(states_a[0]))
    grads = crnn.backward(np.ones_like(out_a), None, cache)
    assert grads.dx.shape == tuple(x.shape)


# --------------------------------------------------------------------------
# convert / to_torch
# --------------------------------------------------------------------------


class Tagger(torch.nn.Module):
    """A model holding every torch.nn recurrent module, and a subclass of one."""

    class OwnLSTM(torch.nn.LSTM):
        pass

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 3)
        self.rnn = torch.nn.Sequential()
        self.lstm = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = torch.nn.GRU(8, 4)
        self.rnn_tanh = torch.nn.RNN(4, 4, nonlinearity="relu")
        self.cells = torch.nn.ModuleList(
            [torch.nn.RNNCell(4, 4), torch.nn.LSTMCell(4, 4), torch.nn.GRUCell(4, 4)]
        )
        self.own = self.OwnLSTM(4, 4)
        self.head = torch.nn.Linear(4, 5)

    def forward(self, ids):
        x, _ = self.lstm(self.embed(ids))
        x, _ = self.gru(x.transpose(0, 1))
        x, _ = self.rnn_tanh(x)
        h = self.cells[0](x[-1])
        h, _ = self.cells[1](h)
        h = self.cells[2](h)
        x, _ = self.own(x + h)
        return self.head(x)


def _model_results(model, ids):
    model.zero_grad()
    out = model(ids)
    out.pow(2).sum().backward()
    return out.detach().clone(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_convert_and_back_in_place(crnn_calls):
    torch.manual_seed(0)
    model = Tagger().double()
    ids = torch.randint(0, 10, (2, 6))
    params = dict(model.named_parameters())
    state = copy.deepcopy(model.state_dict())
    want = _model_results(model, ids)

    assert ct.convert(model) is model
    assert type(model.lstm) is ct.LSTM and type(model.gru) is ct.GRU
    assert type(model.rnn_tanh) is ct.RNN
    assert [type(c) for c in model.cells] == [ct.RNNCell, ct.LSTMCell, ct.GRUCell]
    assert type(model.own) is Tagger.OwnLSTM  # subclasses keep their own forward
    assert isinstance(model.lstm, torch.nn.LSTM)
    assert dict(model.named_parameters()) == params  # the same Parameter objects
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert "LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)" in repr(model)

    got = _model_results(model, ids)
    assert len(crnn_calls) == 2 * 2 + 1 + 1 + 3
    assert_rel_close(got[0].numpy(), want[0].numpy(), tol=1e-10)
    for name in want[1]:
        assert_rel_close(got[1][name].numpy(), want[1][name].numpy(), tol=1e-10, name=name)

    assert ct.to_torch(model) is model
    assert type(model.lstm) is torch.nn.LSTM and type(model.cells[1]) is torch.nn.LSTMCell
    calls = len(crnn_calls)
    back = _model_results(model, ids)
    assert len(crnn_calls) == calls
    assert torch.equal(back[0], want[0])


def test_converted_model_trains_with_an_existing_optimizer():
    torch.manual_seed(1)
    model = Tagger().double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.lstm.weight_hh_l0_reverse.detach().clone()
    ct.convert(model)
    model(torch.randint(0, 10, (2, 6))).pow(2).sum().backward()
    optimizer.step()
    assert not torch.equal(model.lstm.weight_hh_l0_reverse, before)


def test_converted_model_saves_loads_and_copies():
    torch.manual_seed(2)
    model = ct.convert(Tagger().double())
    ids = torch.randint(0, 10, (2, 6))
    want = model(ids)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = Tagger().double()
    fresh.load_state_dict(torch.load(buffer))
    assert torch.allclose(fresh(ids), want, rtol=1e-10, atol=1e-12)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert type(twin.lstm) is ct.LSTM
        assert torch.equal(twin(ids), want)


def test_convert_a_bare_module_and_refuse_others():
    lstm = torch.nn.LSTM(3, 4)
    assert type(ct.convert(lstm)) is ct.LSTM
    assert type(ct.to_torch(lstm)) is torch.nn.LSTM
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        ct.convert(np.zeros(3))


def test_one_class_per_registry_cell_with_a_torch_module():
    specs = [s for s in cells.REGISTRY.values() if s.torch_module]
    assert specs
    for spec in specs:
        for name in (spec.torch_module, spec.torch_module + "Cell"):
            cls = getattr(ct, name)
            torch_class = getattr(torch.nn, name)
            assert cls.__bases__[-1] is torch_class and cls._cell is spec
            assert ct._CRNN_CLASS[torch_class] is cls
    assert len(ct._CRNN_CLASS) == 2 * len(specs)


def test_importing_crnn_does_not_import_the_adapter():
    import subprocess
    import sys

    code = "import sys, crnn; print('crnn.torch' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
