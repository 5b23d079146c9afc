"""Sets of elements of one node tensor, as the reachability kernels hold them (private).

A tensor of shape ``s`` (any rank, no batch axis) is seen as ``(R, M, W)`` rows of bitmaps:
``R = s[0]`` rows (channels of an image, tokens of a sequence, features of a vector), each an
``M x W`` bitmap with ``W = s[-1]`` and ``M`` the product of the axes in between (``(F,)`` is
``(F, 1, 1)``, ``()`` is ``(1, 1, 1)``). Two equivalent forms, converted lazily:

*row form* ``(st, maps)``
    ``st`` uint8 ``(R,)``: 0 = no element of the row set, 1 = every element set, 2 = mixed;
    ``maps`` uint64 ``(R, M, ceil(W / 64))``: the row's bits, meaningful **only** where
    ``st == 2`` (see :mod:`sparsegraph.graph._kernels_rows`). At practical densities almost every
    row of a CNN tensor is all-set or all-clear, which is what keeps the passes close to one read of
    the masks.
*flat form*
    uint8 ``(numel,)`` in C order, 0/1 per element, for the kinds that move elements around.

Besides, a set knows whether it is empty, full or neither; the kernels that build one report it,
so that the walks never reduce over a tensor to find out.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from . import _kernels_rows as KR

__all__ = ["Acc", "Bits", "bits_and", "bits_or", "full_line", "row_view"]

_MIXED = 2


@cache
def row_view(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The ``(R, M, W)`` view of a tensor shape (see the module docstring)."""
    if len(shape) == 0:
        return (1, 1, 1)
    if len(shape) == 1:
        return (shape[0], 1, 1)
    return (shape[0], math.prod(shape[1:-1]), shape[-1])


@cache
def full_line(width: int) -> np.ndarray:
    """The words of a bitmap line with all ``width`` bits set: uint64 ``(ceil(width / 64),)``
    (shared: do not modify)."""
    out = np.empty((width + 63) >> 6, dtype=np.uint64)
    KR.full_line(width, out)
    return out


def _empty_rows(view: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    r, m, w = view
    return np.empty(r, dtype=np.uint8), np.empty((r, m, (w + 63) >> 6), dtype=np.uint64)


class Bits:
    """An immutable set of elements of one tensor (reached, nonzero or backward-alive).

    ``const`` is 0 (empty), 1 (full), 2 (neither) or None (not known yet: found on demand).
    """

    __slots__ = ("shape", "view", "_const", "_st", "_maps", "_flat")

    def __init__(self, shape: tuple[int, ...], *, const: int | None = None,
                 st: np.ndarray | None = None, maps: np.ndarray | None = None,
                 flat: np.ndarray | None = None) -> None:
        self.shape = shape
        self.view = row_view(shape)
        self._const = const
        self._st, self._maps, self._flat = st, maps, flat

    # constructors ---------------------------------------------------------------------------
    @classmethod
    def full(cls, shape: tuple[int, ...]) -> Bits:
        return cls(shape, const=1)

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> Bits:
        return cls(shape, const=0)

    @classmethod
    def from_flat(cls, shape: tuple[int, ...], flat: np.ndarray) -> Bits:
        """From a 0/1 uint8 (or bool) array of ``numel`` elements in C order."""
        flat = np.ascontiguousarray(flat).reshape(-1).view(np.uint8)
        return cls(shape, flat=flat)

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> Bits:
        """From a bool array of the tensor's shape."""
        return cls.from_flat(tuple(dense.shape), np.ascontiguousarray(dense, dtype=bool))

    # queries -------------------------------------------------------------------------------
    def _kind(self) -> int:
        if self._const is None:
            if self._st is not None:
                self._const = int(KR.summary(self._st))
            elif not self._flat.any():
                self._const = 0
            else:
                self._const = 1 if self._flat.all() else _MIXED
        return self._const

    @property
    def is_empty(self) -> bool:
        return self._kind() == 0

    @property
    def is_full(self) -> bool:
        return self._kind() == 1

    @property
    def has_rows(self) -> bool:
        """Whether the row form is at hand (no conversion needed)."""
        return self._st is not None

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The row form ``(st, maps)`` (shared: do not modify)."""
        if self._st is None:
            st, maps = _empty_rows(self.view)
            c = self._const
            if c == 0 or c == 1:
                st.fill(c)
            else:
                st.fill(0)
                w = self.view[2]
                self._const = int(KR.or_flat(st, maps, w, self._flat, full_line(w)))
            self._st, self._maps = st, maps
        return self._st, self._maps

    def flat(self) -> np.ndarray:
        """The flat form, uint8 ``(numel,)`` (shared: do not modify)."""
        if self._flat is None:
            n = math.prod(self.shape)
            c = self._const
            if c == 0 or c == 1:
                self._flat = np.full(n, c, dtype=np.uint8)
            else:
                self._flat = np.empty(n, dtype=np.uint8)
                KR.expand(self._st, self._maps, self.view[2], self._flat)
        return self._flat

    def dense(self) -> np.ndarray:
        """A new bool array of the tensor's shape."""
        return self.flat().astype(bool).reshape(self.shape)

    def nd(self) -> np.ndarray:
        """The flat form as a bool array of the tensor's shape (shared: do not modify)."""
        return self.flat().view(np.bool_).reshape(self.shape)


class Acc:
    """A mutable set of elements that backward contributions are OR-ed into (row form)."""

    __slots__ = ("shape", "view", "st", "maps", "_flats", "_filled")

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.view = row_view(shape)
        self.st, self.maps = _empty_rows(self.view)
        self.st.fill(0)
        self._flats: list[np.ndarray] = []
        self._filled = False

    def fill(self) -> None:
        """Every element set."""
        self.st.fill(1)
        self._flats.clear()
        self._filled = True

    def or_bits(self, bits: Bits) -> None:
        """``self |= bits``."""
        if self._filled or bits.is_empty:
            return
        if bits.is_full:
            self.fill()
            return
        if bits.has_rows:
            st, maps = bits.rows()
            KR.or_rows(self.st, self.maps, 0, st, maps, 0, self.view[0])
        else:
            self._flats.append(bits.flat())

    def or_flat(self, flat: np.ndarray) -> None:
        """``self |=`` a 0/1 uint8 (or bool) array of ``numel`` elements in C order."""
        if not self._filled:
            self._flats.append(np.ascontiguousarray(flat).reshape(-1).view(np.uint8))

    def freeze(self) -> Bits:
        """The accumulated set (the accumulator must not be used afterwards)."""
        if self._filled:
            return Bits(self.shape, const=1, st=self.st, maps=self.maps)
        w = self.view[2]
        frow = full_line(w)
        code = int(KR.normalize(self.st, self.maps, w, frow))
        if self._flats and code != 1:
            flats = self._flats
            flat = flats[0] if len(flats) == 1 else np.bitwise_or.reduce(flats)
            code = int(KR.or_flat(self.st, self.maps, w, flat, frow))
        return Bits(self.shape, const=code, st=self.st, maps=self.maps)


def bits_and(a: Bits, b: Bits) -> Bits:
    """The elements set in both (same shape)."""
    if a.is_empty or b.is_full:
        return a
    if b.is_empty or a.is_full:
        return b
    return Bits.from_flat(a.shape, a.flat() & b.flat())


def bits_or(a: Bits, b: Bits) -> Bits:
    """The elements set in either (same shape)."""
    if a.is_full or b.is_empty:
        return a
    if b.is_full or a.is_empty:
        return b
    return Bits.from_flat(a.shape, a.flat() | b.flat())
