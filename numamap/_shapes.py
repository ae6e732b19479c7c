"""Shapes and dtypes as numpy reads them, checked once for every entry point that takes them.

Used by the mapping layer (``View.ndarray``) and by the constructors above it.
"""
from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import numpy as np


def check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise TypeError(f"dtype={dtype} holds Python objects, whose memory numpy manages itself: "
                        "numamap places only plain data (numbers, bytes, structured records)")
    if dtype.itemsize == 0 and dtype.kind in "SU":
        # numpy makes arrays of unsized strings ('S0', 'U0') one character wide, native order
        dtype = np.dtype(f"{dtype.kind}1")
    return dtype


def dimension(value, shape) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"shape={shape!r}: {value!r} is a bool, not an integer dimension")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"shape={shape!r}: {value!r} is not an integer; shapes take ints, as in "
                        "numpy (convert floats with int() if truncating is what you want)") from None


def check_shape(shape) -> tuple[int, ...]:
    """``shape`` as a tuple of ints, by numpy's rules: integers only (``operator.index``)."""
    if type(shape) is int:  # the common case, without the ABC checks below
        if shape < 0:
            raise ValueError(f"shape={(shape,)} has a negative dimension")
        return (shape,)
    if type(shape) is tuple and all(type(value) is int and value >= 0 for value in shape):
        return shape
    if isinstance(shape, np.ndarray) and shape.ndim == 0:
        items = (shape,)  # a 0-d integer array is one dimension, as numpy takes it
    elif isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, np.ndarray)):
        if isinstance(shape, (str, bytes, Iterable)):  # a set or a dict has no order numpy takes
            raise TypeError(f"shape must be an int or a sequence of ints, not {type(shape).__name__}")
        items = (shape,)  # a single dimension
    else:
        items = tuple(shape)
    shape = tuple(dimension(value, shape) for value in items)
    if any(s < 0 for s in shape):
        raise ValueError(f"shape={shape} has a negative dimension")
    return shape


def fold_subarray(shape: tuple[int, ...], dtype: np.dtype) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype numpy gives an array of ``dtype``: a sub-array dtype such as
    ``('f8', (2,))`` adds its dimensions to the shape. Building the array with them up front
    keeps its ``.base`` the numamap View."""
    if dtype.subdtype is not None:
        base, extra = dtype.subdtype
        shape, dtype = shape + extra, base
    return shape, dtype
