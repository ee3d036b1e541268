"""The one problem generator of the cell tests: random valid arguments for any
registered cell, read from its spec (`crnn.cells.REGISTRY`).

A `Problem` holds the arguments of one call of a cell's forward (x, the
initial states, the weights, lengths, options); `make_problem` draws them
from the spec alone (weights from ``spec.weights`` and ``spec.dims``, states
from ``spec.states``, options from ``spec.options``), so a test written
against it runs for every cell of the registry, including cells added later.

`run` calls an engine (``crnn`` / ``crnn.functional`` or ``crnn.reference``)
through either API -- the generic ``forward(cell, ...)`` / ``backward(...)``
or the cell's named entry points (``lstm_forward(...)``) -- and returns every
result by name: ``out``, each final state (``h_n``, ``c_n``), each array the
cache saves (``cache.gates``), and each gradient (``dx``, ``dh0``,
``dweight_ih``, ...; None for an absent bias).

Parametrisation helpers derive the test axes from the registry:
`cell_variants` gives (spec, options) pairs (every option value of every
cell at least once, or every combination), `bias_variants` the bias subsets a
spec allows, `shapes_for` the shapes that apply to a spec (a 5-tuple names an
output size and applies only to cells that have one).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pytest

import crnn
from crnn import cells
from crnn._testing import counts, force_split
from crnn.cells import CellSpec

SPECS: Tuple[CellSpec, ...] = tuple(cells.REGISTRY.values())
DTYPES = (np.float32, np.float64)
LENGTHS = (None, "random", "zeros")
# Which upstream gradients a backward receives (see Problem.upstream).
UPSTREAMS = ("all", "none", "dout", "states")


def dtype_id(dtype: Any) -> str:
    return np.dtype(dtype).name


dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)


# --------------------------------------------------------------------------
# Axes derived from the registry
# --------------------------------------------------------------------------


def _choices_default_first(option: cells.Option) -> Tuple[str, ...]:
    return (option.default,) + tuple(c for c in option.choices if c != option.default)


def option_variants(spec: CellSpec, mode: str = "each") -> List[Dict[str, str]]:
    """The option settings a test runs a cell with.

    ``"default"``: the defaults only; ``"each"``: every value of every
    option (but the precision) at least once (as many settings as the longest list of choices,
    the first being the defaults); ``"all"``: every combination.
    """
    # The precision option is not an axis here: precision="bf16" has its own
    # contract (a tolerance of its own), tested in tests/test_bf16.py.
    options = [o for o in spec.options if o.role != "precision"]
    if not options:
        return [{}]
    names = [o.name for o in options]
    if mode == "default":
        return [{o.name: o.default for o in options}]
    if mode == "all":
        return [
            dict(zip(names, combo))
            for combo in itertools.product(*(_choices_default_first(o) for o in options))
        ]
    if mode != "each":
        raise ValueError(mode)
    n = max(len(o.choices) for o in options)
    return [
        {o.name: _choices_default_first(o)[i % len(o.choices)] for o in options} for i in range(n)
    ]


def variant_id(spec: CellSpec, options: Dict[str, str]) -> str:
    return "-".join([spec.name, *options.values()])


def cell_variants(mode: str = "each", where=None) -> List[Any]:
    """pytest params ``(spec, options)`` for every registered cell (for which
    ``where(spec)`` holds) and its option settings (see `option_variants`)."""
    return [
        pytest.param(spec, opts, id=variant_id(spec, opts))
        for spec in SPECS
        if where is None or where(spec)
        for opts in option_variants(spec, mode)
    ]


def cell_params(where=None) -> List[Any]:
    """pytest params ``spec`` for every registered cell (for which ``where(spec)`` holds)."""
    return [pytest.param(spec, id=spec.name) for spec in SPECS if where is None or where(spec)]


def bias_variants(spec: CellSpec) -> List[Any]:
    """Which biases a problem carries: all, none, and each one alone."""
    names = [w.name for w in spec.weights if w.bias]
    out: List[Any] = [True, False]
    if len(names) > 1:
        out += [(n,) for n in names]
    return out


def bias_id(bias: Any) -> str:
    if bias is True:
        return "bias"
    if bias is False:
        return "nobias"
    return "only_" + "_".join(bias)


def default_output_size(H: int) -> int:
    """O for a cell with an output size when a shape does not name one."""
    return H // 2 + 1


def full_shape(spec: CellSpec, shape: Sequence[int]) -> Tuple[int, int, int, int, int]:
    """(T, B, I, H, O): O from a 5-tuple, else derived (0 for cells without one)."""
    T, B, I, H = shape[:4]  # noqa: E741
    if not spec.uses_output_size:
        return T, B, I, H, 0
    return T, B, I, H, (shape[4] if len(shape) == 5 else default_output_size(H))


def shapes_for(spec: CellSpec, shapes: Sequence[Sequence[int]]) -> List[Tuple[int, ...]]:
    """The shapes that apply to `spec`: 4-tuples (T, B, I, H) to every cell,
    5-tuples (with an output size O) only to cells that have one."""
    return [tuple(s) for s in shapes if len(s) == 4 or spec.uses_output_size]


def shape_id(shape: Sequence[int]) -> str:
    return "-".join(f"{k}{v}" for k, v in zip("TBIHO", shape))


def variant_shape_params(
    shapes: Sequence[Sequence[int]], mode: str = "each", where=None
) -> List[Any]:
    """pytest params ``(spec, options, shape)`` for every cell variant and
    every shape that applies to its cell."""
    return [
        pytest.param(spec, opts, shape, id=f"{variant_id(spec, opts)}-{shape_id(shape)}")
        for spec in SPECS
        if where is None or where(spec)
        for opts in option_variants(spec, mode)
        for shape in shapes_for(spec, shapes)
    ]


# --------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------


@dataclass
class Problem:
    """The arguments of one forward call of `spec`'s cell."""

    spec: CellSpec
    x: np.ndarray
    states: Tuple[Optional[np.ndarray], ...]  # one per spec.states, None for zeros
    weights: Dict[str, Optional[np.ndarray]]  # every spec weight, None for an absent bias
    lengths: Any
    options: Dict[str, str]
    sizes: Dict[str, int]  # "I", "H", "O", "G"

    @property
    def dtype(self) -> np.dtype:
        return self.x.dtype

    @property
    def T(self) -> int:
        return self.x.shape[0]

    @property
    def B(self) -> int:
        return self.x.shape[1]

    @property
    def width(self) -> int:
        """The width W of the states and of the output (H, or O)."""
        return self.spec.width(self.sizes)

    def replace(self, **changes: Any) -> "Problem":
        return replace(self, **changes)

    def copy(self) -> "Problem":
        return copy.deepcopy(self)

    def with_states(self, states: Any) -> "Problem":
        return self.replace(states=tuple(states))

    def zero_states(self) -> "Problem":
        """The same problem with explicit zero initial states instead of None."""
        return self.with_states(
            np.zeros((self.B, self.width), self.dtype) if s is None else s for s in self.states
        )

    def astype(self, dtype: Any) -> "Problem":
        """The same problem in another float dtype (lengths unchanged)."""

        def cast(a):
            return None if a is None else a.astype(dtype)

        return self.replace(
            x=cast(self.x),
            states=tuple(cast(s) for s in self.states),
            weights={k: cast(v) for k, v in self.weights.items()},
        )

    def inputs(self) -> Dict[str, Optional[np.ndarray]]:
        """Every float argument by its name: x, the initial states, the weights."""
        return {"x": self.x, **dict(zip(self.spec.initial_states, self.states)), **self.weights}

    def named_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of the cell's named forward (``rnn_forward(**kw)``)."""
        kw = dict(self.inputs(), **self.options)
        if self.lengths is not None:
            kw["lengths"] = self.lengths
        return kw

    def valid(self) -> np.ndarray:
        """(T, B) bool: which steps of which rows are inside their sequence."""
        lens = (
            np.full(self.B, self.T)
            if self.lengths is None
            else np.asarray(self.lengths, dtype=np.int64)
        )
        return np.arange(self.T)[:, None] < lens[None, :]

    def upstream(self, which: str = "all", seed: int = 0) -> Tuple[Any, Tuple[Any, ...]]:
        """Random upstream gradients (dout, dstates) of the forward's results.

        `which`: "all" (dout and every final state's gradient), "none"
        (None for everything), "dout" (dout only), "states" (the states'
        gradients only).
        """
        if which not in UPSTREAMS:
            raise ValueError(which)
        rng = np.random.default_rng(seed + 1000)
        W = self.width
        dout = rng.standard_normal((self.T, self.B, W)).astype(self.dtype)
        dstates = tuple(
            rng.standard_normal((self.B, W)).astype(self.dtype) for _ in self.spec.states
        )
        if which in ("none", "states"):
            dout = None
        if which in ("none", "dout"):
            dstates = (None,) * len(dstates)
        return dout, dstates


def make_lengths(kind: Any, T: int, B: int, rng: np.random.Generator) -> Any:
    """None; "random" (each in [1, T], or 0 when T = 0); "zeros" (random, with
    every other row empty; needs B >= 2, so that some row is not); or the
    given lengths."""
    if kind is None:
        return None
    if isinstance(kind, str):
        if kind == "random":
            return rng.integers(min(1, T), T + 1, size=B)
        if kind == "zeros":
            if B == 1:
                raise ValueError(
                    "lengths 'zeros' needs B >= 2: with one row it is an empty "
                    "problem that tests nothing; pass lengths=[0] for that case"
                )
            lens = rng.integers(0, T + 1, size=B)
            lens[::2] = 0
            return lens
        raise ValueError(f"unknown lengths kind {kind!r}")
    return kind  # as given: a list stays a list (the engines convert it)


def make_problem(
    spec: CellSpec,
    shape: Sequence[int],
    dtype: Any = np.float64,
    *,
    seed: int = 0,
    states: bool = True,
    bias: Any = True,
    lengths: Any = None,
    options: Optional[Dict[str, str]] = None,
    scale: float = 1.0,
) -> Problem:
    """Random valid arguments of `spec`'s forward.

    shape: (T, B, I, H) or (T, B, I, H, O). x ~ N(0, 1); initial states ~
    0.5 N(0, 1) (or None when not `states`); weights ~ U(-k, k) with k =
    1/sqrt(H) (PyTorch's default), times `scale`; biases: all (True), none
    (False) or only the named ones (a tuple of names). Drawn in the order x,
    states, weights (spec order), lengths, so the Elman RNN's problems are
    those of `helpers.make_rnn_problem`.
    """
    T, B, I, H, O = full_shape(spec, shape)  # noqa: E741
    sizes = spec.dims(I, H, O)
    W = spec.width(sizes)
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(max(H, 1))
    x = rng.standard_normal((T, B, I)).astype(dtype)
    init = tuple(
        rng.standard_normal((B, W)).astype(dtype) * 0.5 if states else None for _ in spec.states
    )
    weights: Dict[str, Optional[np.ndarray]] = {}
    for w in spec.weights:
        if w.bias and bias is False:
            weights[w.name] = None
            continue
        value = (rng.uniform(-k, k, size=spec.weight_shape(w, sizes)) * scale).astype(dtype)
        keep = not w.bias or bias is True or w.name in bias
        weights[w.name] = value if keep else None
    # Every option at its default but the precision, which is left out (its
    # default, "native") unless asked for: torch's modules have no such argument.
    opts = {o.name: o.default for o in spec.options if o.role != "precision"}
    opts.update(options or {})
    return Problem(spec, x, init, weights, make_lengths(lengths, T, B, rng), opts, sizes)


# --------------------------------------------------------------------------
# Running an engine
# --------------------------------------------------------------------------


def forward(engine: Any, p: Problem, api: str = "generic") -> Tuple[np.ndarray, Tuple, Any]:
    """(out, states_n, cache) of `engine` through the generic or the named API."""
    if api == "generic":
        out, states_n, cache = engine.forward(
            p.spec.name, p.x, p.states, p.weights, lengths=p.lengths, **p.options
        )
        assert isinstance(states_n, tuple) and len(states_n) == len(p.spec.states)
    else:
        out, *states_n, cache = getattr(engine, f"{p.spec.name}_forward")(**p.named_kwargs())
        states_n = tuple(states_n)
    assert isinstance(cache, p.spec.cache_type), type(cache)
    return out, states_n, cache


def backward(
    engine: Any, spec: CellSpec, cache: Any, dout: Any, dstates: Sequence[Any], api: str = "generic"
) -> Any:
    """The gradient tuple of `engine`'s backward, through either API."""
    if api == "generic":
        grads = engine.backward(dout, tuple(dstates), cache)
    else:
        grads = getattr(engine, f"{spec.name}_backward")(dout, *dstates, cache)
    assert isinstance(grads, spec.grads_type), type(grads)
    return grads


def results(
    spec: CellSpec, out: Any, states_n: Sequence[Any], cache: Any, grads: Any = None
) -> Dict[str, Any]:
    """Every result by name: out, final states, saved cache arrays, gradients."""
    res: Dict[str, Any] = {"out": out}
    res.update({name: s for name, s in zip(spec.final_states, states_n)})
    res.update({f"cache.{name}": getattr(cache, name) for name, _ in spec.saved})
    if grads is not None:
        res.update(grads._asdict())
    return res


def run(
    engine: Any,
    p: Problem,
    dout: Any = None,
    dstates: Optional[Sequence[Any]] = None,
    *,
    api: str = "generic",
    with_backward: bool = True,
) -> Dict[str, Any]:
    """Forward (and backward) of `p` on `engine`; every result by name."""
    out, states_n, cache = forward(engine, p, api)
    grads = None
    if with_backward:
        if dstates is None:
            dstates = (None,) * len(p.spec.states)
        grads = backward(engine, p.spec, cache, dout, dstates, api)
    return results(p.spec, out, states_n, cache, grads)


def copies(res: Dict[str, Any]) -> Dict[str, Any]:
    """Copies of every array of `res` (a later call cannot alias them)."""
    return {k: None if v is None else np.array(v, copy=True) for k, v in res.items()}


# --------------------------------------------------------------------------
# Gradients: which field holds the gradient of which argument
# --------------------------------------------------------------------------


def grad_field(spec: CellSpec, name: str) -> str:
    """The gradient tuple's field for the forward argument `name` ("x" -> "dx",
    "h0" -> "dh0", "weight_ih" -> "dweight_ih")."""
    field = "d" + name
    assert field in spec.grads_type._fields, (spec.name, name)
    return field


def loss_of(res: Dict[str, Any], spec: CellSpec, dout: Any, dstates: Sequence[Any]) -> float:
    """sum(dout * out) + sum(dstate * state_n): the loss whose gradient a backward
    with these upstream gradients computes (a None contributes nothing)."""
    loss = 0.0
    if dout is not None:
        loss += float(np.sum(dout * res["out"]))
    for name, d in zip(spec.final_states, dstates):
        if d is not None:
            loss += float(np.sum(d * res[name]))
    return loss


def gradcheck(
    engine: Any,
    p: Problem,
    dout: Any,
    dstates: Sequence[Any],
    *,
    api: str = "generic",
    rtol: float = 1e-7,
    atol: float = 1e-8,
) -> None:
    """Hold `engine`'s backward to central differences of its forward (float64),
    via `crnn.gradcheck`, for every argument; absent biases must get None.

    A None initial state is differentiated as explicit zeros (its gradient
    is the gradient with respect to the zero state).
    """
    assert p.dtype == np.float64
    _, _, cache = forward(engine, p, api)
    grads = backward(engine, p.spec, cache, dout, dstates, api)
    q = p.zero_states().copy()
    params, analytic = {}, {}
    for name, value in q.inputs().items():
        g = getattr(grads, grad_field(p.spec, name))
        if value is None:
            assert g is None, f"{grad_field(p.spec, name)} should be None without {name}"
            continue
        assert g is not None and g.shape == value.shape and g.dtype == np.float64, name
        if value.size:
            params[name], analytic[name] = value, g

    def loss() -> float:
        return loss_of(run(engine, q, api=api, with_backward=False), p.spec, dout, dstates)

    report = crnn.gradcheck(loss, params, analytic, rtol=rtol, atol=atol)
    assert report, str(report)


# --------------------------------------------------------------------------
# Execution settings: ISAs, thread counts, and the proof that threads ran
# --------------------------------------------------------------------------

# A core's L1 data cache as the C driver assumes it: at batch 1, a W_hh
# larger than this splits the hidden units across threads (split_columns).
L1_BYTES = 32 * 1024
# A core's L2 cache as the C driver assumes it: with several rows, a W_hh
# larger than this splits the forward's hidden units across threads.
L2_BYTES = 1024 * 1024


def recurrence_runs(p: Problem) -> bool:
    """Whether the C driver runs a recurrence for p (something to compute)."""
    return p.T > 0 and p.B > 0 and (p.sizes["H"] > 0 or p.spec.uses_output_size)


def recurrence_work(p: Problem) -> int:
    """Multiply-adds per row and step of p's recurrence (its products with
    W_hh and, with an output layer, W_ho): 0 leaves nothing to split."""
    H, O = p.sizes["H"], p.sizes.get("O", 0)
    R = p.width if p.spec.uses_output_size else H
    return R * p.spec.gates * H + (H * O if p.spec.uses_output_size else 0)


def splits_columns(p: Problem) -> bool:
    """Whether p's recurrence, given two threads or more, splits its one row's
    hidden units across them (batch 1, W_hh beyond L1, no output layer)
    instead of splitting batch rows, forward and backward."""
    H = p.sizes["H"]
    return (
        p.B == 1
        and not p.spec.uses_output_size
        and p.spec.gates * H * H * p.dtype.itemsize > L1_BYTES
    )


def forward_splits_columns(p: Problem) -> bool:
    """Whether p's forward recurrence, given two threads or more, splits the
    hidden units of all its rows across them (several rows, W_hh beyond a
    core's L2 cache, no output layer, no second product: the GRU with the
    reset gate before it); its backward splits the batch rows."""
    H = p.sizes["H"]
    return (
        p.B > 1
        and not p.spec.uses_output_size
        and p.spec.name != "gru_reset_before"
        and p.spec.gates * H * H * p.dtype.itemsize > L2_BYTES
    )


def processors() -> int:
    """The processors this process may run on (what caps crnn's teams)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def assert_split(
    seen: Any, p: Problem, threads: int, ctx: str = "", oversubscribe: bool = True
) -> None:
    """`seen` (`crnn._testing.Counts` of p's calls under
    ``force_split(threads)``) shows that the recurrence was cut as far as p
    allows: into min(threads, B) slices of batch rows, or, at batch 1 with a
    large W_hh, into 2 .. threads slices of hidden units; and that each slice
    had a thread of its own (with `oversubscribe`; otherwise as many as there
    are processors). With one thread, that nothing ran on more."""
    where = f"{ctx}: {seen}"
    assert seen.max_team <= threads, where
    if not recurrence_runs(p):
        assert seen.recurrences == 0, where
        return
    assert seen.recurrences >= 1, where
    if threads == 1 or recurrence_work(p) == 0:
        assert seen.max_slices == 1, where
        assert seen.max_team == 1 or threads > 1, where
        return
    if splits_columns(p):
        assert seen.column_splits == seen.recurrences, where
        assert 2 <= seen.max_slices <= threads, where
    elif forward_splits_columns(p):
        # The forwards split units (2 .. threads slices), the backward's
        # chunks batch rows (min(threads, B) slices).
        assert 1 <= seen.column_splits <= seen.recurrences, where
        assert 2 <= seen.max_slices <= threads, where
    else:
        assert seen.column_splits == 0, where
        assert seen.max_slices == min(threads, p.B), where
    team = seen.max_slices if oversubscribe else min(seen.max_slices, processors())
    assert seen.max_team >= team, where


def spread_threads(
    counts: Sequence[int] = (2, 3, 4), isas: Optional[Sequence[str]] = None
) -> Dict[str, Tuple[int, ...]]:
    """Per ISA, 1 thread and a share of `counts`, dealt round the ISAs: with
    three ISAs each runs 1 and one of 2, 3, 4 threads; with one, all four.
    Every ISA is held to the reference and every count runs once, for a
    third of the cost of every ISA x every count."""
    isas = list(crnn.available_isas() if isas is None else isas)
    return {isa: (1, *counts[i :: len(isas)]) for i, isa in enumerate(isas)}


def configs(
    threads: Union[Sequence[int], Mapping[str, Sequence[int]]] = (1, 2, 3, 4),
    isas: Optional[Sequence[str]] = None,
    problem: Optional[Problem] = None,
    *,
    oversubscribe: bool = True,
    check: Optional[Callable[[Any], None]] = None,
) -> Iterator[str]:
    """Set each ISA x thread count in turn; yields a label for messages.

    `threads`: the counts for every ISA, or per ISA (`spread_threads`; then
    `isas` is its keys). Two threads or more run under
    `crnn._testing.force_split`: every
    problem is cut into as many slices as it allows, on that many threads
    whatever the machine (unless not `oversubscribe`: then on at most as many
    threads as processors, each taking several slices). When the caller asks
    for the next configuration, the counts of what ran in this one (the
    caller's calls of `problem`) are checked (`assert_split`), and passed to
    `check`. The conftest fixture restores the defaults after the test.
    """
    if isinstance(threads, Mapping):
        per_isa = {isa: tuple(counts) for isa, counts in threads.items()}
    else:
        per_isa = {isa: tuple(threads) for isa in (crnn.available_isas() if isas is None else isas)}
    for isa, counts_ in per_isa.items():
        crnn.set_isa(isa)
        for n in counts_:
            label = f"{isa}, {n} threads"
            if n > 1:
                split = force_split(n, oversubscribe=oversubscribe)
            else:
                crnn.set_num_threads(1)
                split = contextlib.nullcontext()
            with split, counts() as seen:
                yield label
            if problem is not None:
                assert_split(seen, problem, n, ctx=label, oversubscribe=oversubscribe)
            if check is not None:
                check(seen)
