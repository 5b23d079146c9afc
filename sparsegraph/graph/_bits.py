"""Sets of elements of one node tensor, as the reachability kernels hold them (private).

A tensor of shape ``s`` (any rank, no batch axis) is seen as ``(R, M, W)`` rows of bitmaps:
``R = s[0]`` rows (channels of an image, tokens of a sequence, features of a vector), each an
``M x W`` bitmap with ``W = s[-1]`` and ``M`` the product of the axes in between (``(F,)`` is
``(F, 1, 1)``, ``()`` is ``(1, 1, 1)``). Two equivalent forms, converted lazily:

*row form* ``(st, maps)``
    ``st`` uint8 ``(R,)``: 0 = no element of the row set, 1 = every element set, 2 = mixed;
    ``maps`` uint64 ``(R, M, ceil(W / 64))``: the row's bits, meaningful **only** where
    ``st == 2`` (see :mod:`sparsegraph.graph._kernels_reach`). At practical densities almost every
    row of a CNN tensor is all-set or all-clear, which is what keeps the passes close to one read of
    the masks.
*flat form*
    uint8 ``(numel,)`` in C order, 0/1 per element, for the kinds that move elements around.
"""

from __future__ import annotations

import math

import numpy as np

from . import _kernels_reach as K

__all__ = ["Bits", "Acc", "row_view"]


def row_view(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The ``(R, M, W)`` view of a tensor shape (see the module docstring)."""
    if len(shape) == 0:
        return (1, 1, 1)
    if len(shape) == 1:
        return (shape[0], 1, 1)
    return (shape[0], math.prod(shape[1:-1]), shape[-1])


class Bits:
    """An immutable set of elements of one tensor (reached, nonzero or backward-alive)."""

    __slots__ = ("shape", "view", "_const", "_st", "_maps", "_flat")

    def __init__(self, shape: tuple[int, ...], *, const: int | None = None,
                 st: np.ndarray | None = None, maps: np.ndarray | None = None,
                 flat: np.ndarray | None = None) -> None:
        self.shape = shape
        self.view = row_view(shape)
        self._const = const  # 0 = empty, 1 = full, None = look at the arrays
        self._st, self._maps, self._flat = st, maps, flat
        if const is None and st is not None:  # a flat form is classified on demand
            if not st.any():
                self._const = 0
            elif (st == 1).all():
                self._const = 1

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
    @property
    def is_empty(self) -> bool:
        if self._const is None and self._st is None:
            self._const = 0 if not self._flat.any() else (1 if self._flat.all() else None)
        return self._const == 0

    @property
    def is_full(self) -> bool:
        if self._const is None and self._st is None:
            self._const = 0 if not self._flat.any() else (1 if self._flat.all() else None)
        return self._const == 1

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The row form ``(st, maps)`` (shared: do not modify)."""
        if self._st is None:
            r, m, w = self.view
            nw = (w + 63) >> 6
            if self._const is not None:
                self._st = np.full(r, self._const, dtype=np.uint8)
                self._maps = np.empty((r, m, nw), dtype=np.uint64)
            else:
                st = np.zeros(r, dtype=np.uint8)
                maps = np.empty((r, m, nw), dtype=np.uint64)
                K.or_flat(st, maps, w, self._flat)
                self._st, self._maps = st, maps
        return self._st, self._maps

    def flat(self) -> np.ndarray:
        """The flat form, uint8 ``(numel,)`` (shared: do not modify)."""
        if self._flat is None:
            n = math.prod(self.shape)
            if self._const is not None:
                self._flat = np.full(n, self._const, dtype=np.uint8)
            else:
                self._flat = K.expand(self._st, self._maps, self.view[2])
        return self._flat

    def dense(self) -> np.ndarray:
        """A new bool array of the tensor's shape."""
        return self.flat().astype(bool).reshape(self.shape)

    def nd(self) -> np.ndarray:
        """The flat form as a bool array of the tensor's shape (shared: do not modify)."""
        return self.flat().view(np.bool_).reshape(self.shape)


class Acc:
    """A mutable set of elements that backward contributions are OR-ed into (row form)."""

    __slots__ = ("shape", "view", "st", "maps", "_flats")

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.view = row_view(shape)
        r, m, w = self.view
        self.st = np.zeros(r, dtype=np.uint8)
        self.maps = np.empty((r, m, (w + 63) >> 6), dtype=np.uint64)
        self._flats: list[np.ndarray] = []

    def fill(self) -> None:
        """Every element set."""
        self.st[:] = 1
        self._flats.clear()

    def or_bits(self, bits: Bits) -> None:
        """``self |= bits``."""
        if bits.is_empty:
            return
        if bits.is_full:
            self.fill()
            return
        if bits._st is not None:
            st, maps = bits.rows()
            K.or_channels(self.st, self.maps, 0, st, maps, 0, self.view[0])
        else:
            self._flats.append(bits.flat())

    def or_flat(self, flat: np.ndarray) -> None:
        """``self |=`` a 0/1 uint8 (or bool) array of ``numel`` elements in C order."""
        self._flats.append(np.ascontiguousarray(flat).reshape(-1).view(np.uint8))

    def full(self) -> bool:
        return bool((self.st == 1).all())

    def freeze(self) -> Bits:
        """The accumulated set (the accumulator must not be used afterwards)."""
        w = self.view[2]
        K.normalize(self.st, self.maps, w)
        if self._flats and not (self.st == 1).all():
            flat = self._flats[0] if len(self._flats) == 1 else np.bitwise_or.reduce(self._flats)
            K.or_flat(self.st, self.maps, w, flat)
        return Bits(self.shape, st=self.st, maps=self.maps)


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
