"""The ONNX operators crnn.onnx runs besides the recurrent ones, in NumPy.

The glue that graphs of recurrent models contain (exported by `crnn.onnx`
or by ``torch.onnx.export``): shapes and layouts (Transpose, Reshape,
Squeeze, Unsqueeze, Concat, Slice, Split, Gather, Expand, Shape, Cast,
Constant, ConstantOfShape, Identity), products (Gemm, MatMul), element-wise
arithmetic and activations, (Log)Softmax and OneHot. Each entry of `OPS`
takes the node's `Attributes` and the model's opset version and returns
the node's function, ``fn(*inputs) -> tuple of outputs`` (an absent
optional input is None). Reading the attributes happens at load time, so an
attribute crnn does not implement is refused there, naming it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

__all__ = ["Attributes", "UnsupportedModelError", "OPS"]

NodeFunction = Callable[..., Tuple[np.ndarray, ...]]


class UnsupportedModelError(ValueError):
    """An ONNX model uses an operator, attribute or input crnn does not implement."""


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class Attributes:
    """A node's attributes, read by name; `done` refuses those nobody read."""

    def __init__(self, node: Any, where: str) -> None:
        from onnx import helper, numpy_helper

        self.where = where
        self.outputs = len(node.output)  # how many results the node names
        self._values: Dict[str, Any] = {}
        for a in node.attribute:
            value = helper.get_attribute_value(a)
            if a.type == a.TENSOR:
                value = numpy_helper.to_array(value)
            self._values[a.name] = _decode(value)
        self._read: set = set()

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        self._read.add(name)
        return self._values.get(name, default)

    def refuse(self, name: str, why: str) -> None:
        """Raise if `name` is set (and `why` says what crnn lacks)."""
        if name in self._values:
            raise UnsupportedModelError(
                f"{self.where}: attribute {name!r} ({why}) is not supported by crnn.onnx"
            )

    def done(self) -> None:
        for name in self._values:
            if name not in self._read:
                raise UnsupportedModelError(
                    f"{self.where}: attribute {name!r} is not supported by crnn.onnx"
                )


def _ints(a: Any) -> List[int]:
    """An integer input (a shape, axes, ...) as a list of Python ints."""
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


# --------------------------------------------------------------------------
# Constants, shapes and types
# --------------------------------------------------------------------------


def _identity(attrs: Attributes, opset: int) -> NodeFunction:
    attrs.done()
    return lambda x: (x,)


def _constant(attrs: Attributes, opset: int) -> NodeFunction:
    kinds = {
        "value": lambda v: v,
        "value_float": lambda v: np.array(v, np.float32),
        "value_floats": lambda v: np.array(v, np.float32),
        "value_int": lambda v: np.array(v, np.int64),
        "value_ints": lambda v: np.array(v, np.int64),
    }
    given = [k for k in kinds if k in attrs]
    if len(given) != 1:
        attrs.done()  # names a sparse or string value, which crnn does not hold
        raise UnsupportedModelError(f"{attrs.where}: needs exactly one value attribute")
    value = np.asarray(kinds[given[0]](attrs.get(given[0])))
    attrs.done()
    return lambda: (value,)


def _constant_of_shape(attrs: Attributes, opset: int) -> NodeFunction:
    fill = attrs.get("value")
    fill = np.zeros(1, np.float32) if fill is None else np.asarray(fill).reshape(-1)
    attrs.done()
    return lambda shape: (np.full(tuple(_ints(shape)), fill[0], dtype=fill.dtype),)


def _shape(attrs: Attributes, opset: int) -> NodeFunction:
    start, end = attrs.get("start", 0), attrs.get("end")
    attrs.done()
    return lambda x: (np.array(x.shape[start:end], np.int64),)


def _cast(attrs: Attributes, opset: int) -> NodeFunction:
    from onnx import helper

    to = helper.tensor_dtype_to_np_dtype(attrs.get("to"))
    attrs.refuse("saturate", "float8 saturation")
    attrs.done()
    return lambda x: (x.astype(to),)


# --------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------


def _transpose(attrs: Attributes, opset: int) -> NodeFunction:
    perm = attrs.get("perm")
    attrs.done()
    return lambda x: (np.transpose(x, perm),)


def _reshape(attrs: Attributes, opset: int) -> NodeFunction:
    allowzero = attrs.get("allowzero", 0)
    attrs.done()

    def reshape(x, shape):
        dims = _ints(shape)
        if not allowzero:  # 0 copies the input's size on that axis
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        return (x.reshape(dims),)

    return reshape


def _squeeze(attrs: Attributes, opset: int) -> NodeFunction:
    attr_axes = attrs.get("axes")
    attrs.done()

    def squeeze(x, axes=None):
        chosen = _ints(axes) if axes is not None else attr_axes
        if chosen is None:
            return (np.squeeze(x),)
        return (np.squeeze(x, axis=tuple(_axis(a, x.ndim) for a in chosen)),)

    return squeeze


def _unsqueeze(attrs: Attributes, opset: int) -> NodeFunction:
    attr_axes = attrs.get("axes")
    attrs.done()

    def unsqueeze(x, axes=None):
        chosen: List[int] = _ints(axes) if axes is not None else attr_axes
        rank = x.ndim + len(chosen)
        return (np.expand_dims(x, tuple(sorted(_axis(a, rank) for a in chosen))),)

    return unsqueeze


def _concat(attrs: Attributes, opset: int) -> NodeFunction:
    axis = attrs.get("axis")
    attrs.done()
    return lambda *xs: (np.concatenate(xs, axis=axis),)


def _slice(attrs: Attributes, opset: int) -> NodeFunction:
    attr: List[Any] = [attrs.get(k) for k in ("starts", "ends", "axes")]  # opset < 10
    attrs.done()

    def slice_(x, starts=None, ends=None, axes=None, steps=None):
        s: List[int] = _ints(starts) if starts is not None else attr[0]
        e: List[int] = _ints(ends) if ends is not None else attr[1]
        given: Optional[List[int]] = _ints(axes) if axes is not None else attr[2]
        ax = list(range(len(s))) if given is None else [_axis(a, x.ndim) for a in given]
        st = _ints(steps) if steps is not None else [1] * len(s)
        index = [slice(None)] * x.ndim
        for a, start, end, step in zip(ax, s, e, st):
            index[a] = slice(start, end, step)
        return (x[tuple(index)],)

    return slice_


def _split(attrs: Attributes, opset: int) -> NodeFunction:
    axis = attrs.get("axis", 0)
    attr_split = attrs.get("split")
    count = attrs.get("num_outputs") or attrs.outputs
    attrs.done()

    def split(x, sizes=None):
        parts: Optional[List[int]] = _ints(sizes) if sizes is not None else attr_split
        n = x.shape[axis]
        if parts is None:
            size = -(-n // count)  # the last part may be smaller (opset 18)
            parts = [min(size, n - i * size) for i in range(count)]
        return tuple(np.split(x, np.cumsum(parts)[:-1], axis=axis))

    return split


def _gather(attrs: Attributes, opset: int) -> NodeFunction:
    axis = attrs.get("axis", 0)
    attrs.done()
    return lambda data, indices: (np.take(data, indices.astype(np.int64), axis=axis),)


def _expand(attrs: Attributes, opset: int) -> NodeFunction:
    attrs.done()

    def expand(x, shape):
        target = np.broadcast_shapes(x.shape, tuple(_ints(shape)))
        return (np.array(np.broadcast_to(x, target)),)

    return expand


# --------------------------------------------------------------------------
# Products and element-wise operators
# --------------------------------------------------------------------------


def _gemm(attrs: Attributes, opset: int) -> NodeFunction:
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    trans_a, trans_b = attrs.get("transA", 0), attrs.get("transB", 0)
    attrs.done()

    def gemm(a, b, c=None):
        y = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if alpha != 1.0:
            y = y * y.dtype.type(alpha)
        if c is not None:
            y = y + (c if beta == 1.0 else c * c.dtype.type(beta))
        return (y,)

    return gemm


def _matmul(attrs: Attributes, opset: int) -> NodeFunction:
    attrs.done()
    return lambda a, b: (np.matmul(a, b),)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu":  # ONNX truncates integer quotients toward zero
        return np.trunc(np.true_divide(a, b)).astype(a.dtype)
    return a / b


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable:
    def factory(attrs: Attributes, opset: int) -> NodeFunction:
        attrs.refuse("broadcast", "opset 6 broadcasting")
        attrs.done()
        return lambda a, b: (fn(a, b),)

    return factory


def _sigmoid_values(x: np.ndarray) -> np.ndarray:
    z = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype)


def _unary(fn: Callable[[np.ndarray], np.ndarray]) -> Callable:
    def factory(attrs: Attributes, opset: int) -> NodeFunction:
        attrs.done()
        return lambda x: (fn(x),)

    return factory


def _softmax(log: bool) -> Callable:
    def factory(attrs: Attributes, opset: int) -> NodeFunction:
        axis = attrs.get("axis", -1 if opset >= 13 else 1)
        attrs.done()

        def softmax(x):
            a = _axis(axis, x.ndim)
            # Before opset 13 the axes from `axis` on are flattened into one.
            flat = x if opset >= 13 else x.reshape(x.shape[:a] + (-1,))
            a = a if opset >= 13 else flat.ndim - 1
            shifted = flat - flat.max(axis=a, keepdims=True)
            if log:
                y = shifted - np.log(np.exp(shifted).sum(axis=a, keepdims=True))
            else:
                e = np.exp(shifted)
                y = e / e.sum(axis=a, keepdims=True)
            return (y.reshape(x.shape),)

        return softmax

    return factory


def _one_hot(attrs: Attributes, opset: int) -> NodeFunction:
    axis = attrs.get("axis", -1)
    attrs.done()

    def one_hot(indices, depth, values):
        n = int(np.asarray(depth).reshape(-1)[0])
        ids = indices.astype(np.int64)
        ids = np.where(ids < 0, ids + n, ids)
        out = np.where(ids[..., None] == np.arange(n), values[1], values[0]).astype(values.dtype)
        return (np.moveaxis(out, -1, _axis(axis, out.ndim)),)

    return one_hot


OPS: Dict[str, Callable[[Attributes, int], NodeFunction]] = {
    "Identity": _identity,
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
    "Shape": _shape,
    "Cast": _cast,
    "Transpose": _transpose,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": _concat,
    "Slice": _slice,
    "Split": _split,
    "Gather": _gather,
    "Expand": _expand,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(_divide),
    "Tanh": _unary(np.tanh),
    "Sigmoid": _unary(_sigmoid_values),
    "Relu": _unary(lambda x: np.maximum(x, x.dtype.type(0))),
    "Softmax": _softmax(log=False),
    "LogSoftmax": _softmax(log=True),
    "OneHot": _one_hot,
}
