"""Every public name of crnn has a docstring that help() shows.

Walks crnn and each public submodule (no name component starting with an
underscore): the module itself, the names of its ``__all__`` (or, without
one, the functions and classes it defines), and the public methods and
properties of each public class. ``help()`` shows what `inspect.getdoc`
returns, which also finds a docstring inherited from a base class.
Also: the API lists (``__all__``) of the two engines name every entry point.
"""

from __future__ import annotations

import inspect
from typing import Any, Iterator, Tuple

import pytest

import crnn
import crnn.apps.text
import crnn.cli
import crnn.functional
import crnn.reference
from helpers import public_modules, public_names


def _defined_by_crnn(cls: type, name: str) -> bool:
    """Whether the class that provides `name` to `cls` is crnn's (a member
    inherited from another library's base class, e.g. torch.nn.LSTM's, is
    that library's to document)."""
    owner = next(c for c in cls.__mro__ if name in vars(c))
    return owner.__module__.split(".")[0] == "crnn"


def _members(cls: type) -> Iterator[Tuple[str, Any]]:
    """(name, object help() documents) for each public method and property."""
    for name in dir(cls):
        if name.startswith("_") or not _defined_by_crnn(cls, name):
            continue
        static = inspect.getattr_static(cls, name)
        if isinstance(static, property):
            yield name, static
        else:
            value = getattr(cls, name)
            if inspect.isroutine(value):
                yield name, value


def _documented_objects() -> Iterator[Tuple[str, Any]]:
    """(qualified name, object) for everything whose docstring help() shows."""
    seen = set()
    for module in public_modules():
        yield module.__name__, module
        for name in public_names(module):
            obj = getattr(module, name)
            if not (inspect.isroutine(obj) or inspect.isclass(obj)):
                continue  # constants and type aliases have no docstring of their own
            yield f"{module.__name__}.{name}", obj
            if inspect.isclass(obj) and obj not in seen:  # a class's members once
                seen.add(obj)
                for member, value in _members(obj):
                    yield f"{module.__name__}.{name}.{member}", value


DOCUMENTED = list(_documented_objects())


def test_the_walk_reaches_every_layer_of_the_package():
    """The walk is not vacuous: it sees the floors from the registry to the apps."""
    seen = {id(obj) for _, obj in DOCUMENTED}
    for expected in (
        crnn.cells.CellSpec.dims,
        crnn.reference.rnn_forward,
        crnn.functional.lstm_backward,
        crnn.nn.LSTM.forward,
        inspect.getattr_static(crnn.nn.Recurrent, "width"),
        crnn.models.Seq2Seq.beam_search,
        crnn.training.TBPTT.step,
        crnn.apps.text.train,
        crnn.cli.main,
    ):
        assert id(expected) in seen, expected
    assert len(DOCUMENTED) > 500


def test_every_public_name_has_a_docstring():
    missing = [name for name, obj in DOCUMENTED if not (inspect.getdoc(obj) or "").strip()]
    assert not missing, f"no docstring for help() to show: {missing}"


def test_every_public_class_has_its_own_docstring():
    """A class's help() must describe it, not fall back to its base class's text
    (as when a class body builds its docstring as an expression: __doc__ None)."""
    inherited = [
        name
        for name, obj in DOCUMENTED
        if inspect.isclass(obj) and not (obj.__dict__.get("__doc__") or "").strip()
    ]
    assert not inherited, f"classes without a docstring of their own: {inherited}"


@pytest.mark.parametrize(
    "module, companion",
    [(crnn.reference, "crnn._reference_seq"), (crnn.functional, "crnn._functional_seq")],
)
def test_all_lists_every_public_function(module, companion):
    """An engine's ``__all__`` names every public function it defines (itself or
    in the private module of its embedding and attention), and nothing else."""
    functions = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and inspect.isfunction(value)
        and value.__module__ in (module.__name__, companion)
    }
    assert functions <= set(module.__all__), sorted(functions - set(module.__all__))
    assert all(hasattr(module, name) for name in module.__all__)


def test_both_engines_list_the_same_entry_points():
    specification_only = {"ACTIVATIONS", "activation_grad", "KERNELS", "round_bf16"}
    assert set(crnn.functional.__all__) == set(crnn.reference.__all__) - specification_only
