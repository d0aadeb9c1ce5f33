"""Vectorised hex codec for plain-JSON sampler results (D1): no Python loop per shot.

Encoding writes the JSON array text (``"0x1f","0x0",...``) straight from a BitArray's packed
bytes with lookup tables and a boolean mask that drops leading zero digits. Decoding works on
the raw bytes of the JSON array: quote positions delimit the tokens, digits are gathered into a
right-aligned nibble matrix and packed two nibbles per byte, which is exactly BitArray's layout
(big-endian bytes, last byte = bits 0-7).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import orjson

from ..exceptions import WireFormatError

__all__ = ["decode_hex_array", "encode_hex_lists", "find_array_end"]

_PREFIX = np.frombuffer(b'"0x', dtype=np.uint8)
_QUOTE, _COMMA, _ZERO, _X = ord('"'), ord(","), ord("0"), ord("x")
_OPEN, _CLOSE = ord("["), ord("]")
_MASKS = np.array([(1 << (8 * m)) - 1 for m in range(9)], dtype=np.uint64)
_LSB = np.uint64(0x0101010101010101)
_HIGH_BITS = np.uint64(0x8080808080808080)
_ZERO_FILL = np.uint64(0x3030303030303030)
_CASE_BITS = np.uint64(0x2020202020202020)
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_EVEN_BYTES = np.uint64(0x00FF00FF00FF00FF)
_EVEN_SHORTS = np.uint64(0x0000FFFF0000FFFF)


def _hex_digits(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ASCII hex digits (n, 8 * words) of big-endian rows and each row's significant digit count.

    SWAR: each 4-byte group is spread to one nibble per byte of a uint64 and turned into ASCII
    with a few whole-array integer operations.
    """
    n, nbytes = packed.shape
    words = max(math.ceil(nbytes / 4), 1)
    if nbytes == 4 * words:
        grouped = np.ascontiguousarray(packed)
    else:
        grouped = np.zeros((n, 4 * words), dtype=np.uint8)
        grouped[:, 4 * words - nbytes :] = packed
    x = grouped.view(">u4").astype(np.uint64)  # (n, words)
    x = (x | (x << np.uint64(16))) & _EVEN_SHORTS
    x = (x | (x << np.uint64(8))) & _EVEN_BYTES
    x = (x | (x << np.uint64(4))) & _LOW_NIBBLES  # one nibble per byte, most significant first
    letters = ((x + np.uint64(0x0606060606060606)) >> np.uint64(4)) & _LSB
    chars = x + _ZERO_FILL + letters * np.uint64(39)
    digits = chars.astype(">u8").view(np.uint8).reshape(n, 8 * words)
    nonzero = ((x + np.uint64(0x7F7F7F7F7F7F7F7F)) & _HIGH_BITS) >> np.uint64(7)
    if words == 1 and hasattr(np, "bitwise_count"):
        smear = nonzero[:, 0] * np.uint64(0xFF)  # mark every byte at/after the first non-zero
        smear |= smear >> np.uint64(8)
        smear |= smear >> np.uint64(16)
        smear |= smear >> np.uint64(32)
        count = np.bitwise_count(smear & _LSB).astype(np.int64)
    else:
        nz = digits != _ZERO
        count = np.where(nz.any(axis=1), 8 * words - nz.argmax(axis=1), 0)
    return digits, np.maximum(count, 1)


def encode_hex_lists(packed: np.ndarray) -> np.ndarray:
    """JSON nested lists of hex strings for a BitArray array ``(*shape, shots, nbytes)`` (D1).

    The whole text is produced by one boolean compress of a fixed-width row per sample:
    ``[`` slots (lists opened before it), ``"0x``, the digits, ``"``, ``]`` slots (lists it
    closes) and ``,``; the keep-mask drops unused slots and leading zero digits. Returns the
    UTF-8 bytes as a uint8 array (use ``memoryview`` to join without a copy).
    """
    shape = packed.shape[:-1]
    if math.prod(shape) == 0:
        return np.frombuffer(orjson.dumps(np.zeros(shape, dtype=np.uint8).tolist()), np.uint8)
    depth = len(shape)
    flat = packed.reshape(-1, packed.shape[-1])
    n = flat.shape[0]
    digits, count = _hex_digits(flat)
    width = digits.shape[1]
    closes = np.zeros(n, dtype=np.int64)
    running = np.ones(n, dtype=bool)
    index = np.arange(n)
    stride = 1
    for size in reversed(shape):
        running &= (index // stride) % size == size - 1
        closes += running
        stride *= size
    opens = np.empty(n, dtype=np.int64)
    opens[0] = depth
    opens[1:] = closes[:-1]
    template, table = _row_tables(depth, width)
    rows = np.empty((n, template.size), dtype=np.uint8)
    rows[:] = template
    rows[:, depth + 3 : depth + 3 + width] = digits
    keep = table[(opens * (depth + 1) + closes) * (width + 1) + count]
    keep[-1, -1] = False  # no comma after the last sample
    return rows[keep]


@functools.lru_cache(maxsize=32)
def _row_tables(depth: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row template and keep-mask table indexed by (opens, closes, significant digits)."""
    size = 2 * depth + width + 5
    template = np.empty(size, dtype=np.uint8)
    template[:depth] = _OPEN
    template[depth : depth + 3] = _PREFIX
    template[depth + 3 + width] = _QUOTE
    template[depth + 4 + width : depth + 4 + width + depth] = _CLOSE
    template[-1] = _COMMA
    table = np.ones(((depth + 1) ** 2 * (width + 1), size), dtype=bool)
    slots = np.arange(depth)
    columns = np.arange(width)
    for opened in range(depth + 1):
        for closed in range(depth + 1):
            for digits in range(width + 1):
                row = table[(opened * (depth + 1) + closed) * (width + 1) + digits]
                row[:depth] = slots >= depth - opened
                row[depth + 3 : depth + 3 + width] = columns >= width - digits
                row[depth + 4 + width : depth + 4 + width + depth] = slots < closed
    return template, table


def find_array_end(data: np.ndarray, start: int) -> int:
    """Index just after the JSON array of hex strings that opens at ``data[start]``.

    Hex strings hold no brackets, so the array ends where the bracket depth first returns to
    zero; only bracket positions are examined.
    """
    rest = data[start:]
    opens = np.flatnonzero(rest == _OPEN)
    closes = np.flatnonzero(rest == _CLOSE)
    positions = np.concatenate([opens, closes])
    order = np.argsort(positions, kind="stable")
    depth = np.cumsum(np.where(order < opens.size, 1, -1))
    closed = np.flatnonzero(depth == 0)
    if not closed.size:
        raise WireFormatError("samples: unterminated list")
    return start + int(positions[order[closed[0]]]) + 1


def _shape_of(data: np.ndarray, token_starts: np.ndarray) -> tuple[tuple[int, ...], int]:
    """Shape (incl. shots) of a regular nested list, from its bracket positions only."""
    opens = np.flatnonzero(data == _OPEN)
    closes = np.flatnonzero(data == _CLOSE)
    if opens.size != closes.size or not opens.size:
        raise WireFormatError("samples: malformed nested list")
    positions = np.concatenate([opens, closes])
    order = np.argsort(positions, kind="stable")
    steps = np.where(order < opens.size, 1, -1)
    depth_after = np.cumsum(steps)
    if depth_after.min() < 0 or depth_after[-1] != 0 or np.count_nonzero(depth_after == 0) != 1:
        raise WireFormatError("samples: malformed nested list")
    is_open = order < opens.size
    open_depths = depth_after[is_open]
    max_depth = int(open_depths.max())
    counts = np.bincount(open_depths, minlength=max_depth + 1)[1:]
    shape = []
    for k in range(1, max_depth):
        if counts[k] % counts[k - 1]:
            raise WireFormatError("samples: ragged nested list")
        shape.append(int(counts[k] // counts[k - 1]))
    # innermost lists: an open at max depth is immediately followed (in bracket order) by its close
    sorted_pos = positions[order]
    inner = np.flatnonzero(is_open & (depth_after == max_depth))
    if np.any(inner + 1 >= sorted_pos.size) or np.any(
        is_open[np.minimum(inner + 1, sorted_pos.size - 1)]
    ):
        raise WireFormatError("samples: ragged nested list")
    lo = np.searchsorted(token_starts, sorted_pos[inner])
    hi = np.searchsorted(token_starts, sorted_pos[inner + 1])
    per_list = hi - lo
    if int(per_list.sum()) != token_starts.size:
        raise WireFormatError("samples: ragged nested list (values outside the innermost lists)")
    shots = int(per_list[0])
    if np.any(per_list != shots):
        raise WireFormatError("samples: ragged nested list (shots differ between lists)")
    shape.append(shots)
    return tuple(shape), int(positions.size)


def _pack_tokens(
    data: np.ndarray, ends: np.ndarray, lengths: np.ndarray, nbytes: int
) -> np.ndarray:
    """Big-endian bytes of hex tokens that end at ``ends`` and have ``lengths`` digits.

    Every group of 8 digits is read as one unaligned uint64 (a stride-1 view of the body) ending
    at the token's closing quote, masked to the token's digits, checked to be hex digits and
    folded into a 32-bit value with whole-array integer operations (SWAR); there is no
    per-token work in Python.
    """
    words = math.ceil(nbytes / 4)
    pad = 8 * words
    padded = np.empty(data.size + pad, dtype=np.uint8)
    padded[:pad] = _ZERO
    padded[pad:] = data
    view = np.ndarray(shape=(padded.size - 7,), dtype="<u8", buffer=padded.data, strides=(1,))
    out = np.empty((ends.size, 4 * words), dtype=np.uint8)
    for k in range(words):
        x = view[ends + (pad - 8 * (k + 1))].byteswap()  # last digit in the lowest byte
        mask = _MASKS[np.clip(lengths - 8 * k, 0, 8)]
        x = (x & mask) | (_ZERO_FILL & ~mask)
        nib = (x & _LOW_NIBBLES) + ((x >> np.uint64(6)) & _LSB) * np.uint64(9)
        # valid iff re-encoding the nibbles (lower case) gives the input back (case folded)
        letters = ((nib + np.uint64(0x0606060606060606)) >> np.uint64(4)) & _LSB
        expected = nib + _ZERO_FILL + letters * np.uint64(39)
        overflow = (nib + np.uint64(0x7070707070707070)) & _HIGH_BITS  # a "nibble" above 15
        if not np.array_equal(x | _CASE_BITS, expected) or overflow.any():
            raise WireFormatError("samples: invalid hex digit")
        t = (nib | (nib >> np.uint64(4))) & _EVEN_BYTES
        t = (t | (t >> np.uint64(8))) & _EVEN_SHORTS
        value = ((t | (t >> np.uint64(16))) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        out[:, 4 * (words - 1 - k) : 4 * (words - k)] = (
            value.byteswap().view(np.uint8).reshape(-1, 4)
            if np.little_endian
            else value.view(np.uint8).reshape(-1, 4)
        )
    return out[:, 4 * words - nbytes :]


def _check_separators(
    data: np.ndarray, n: int, starts: np.ndarray, ends: np.ndarray, brackets: int
) -> None:
    """Everything outside the tokens must be brackets, commas and whitespace, nothing else."""
    token_bytes = int((ends - starts).sum()) + 2 * n
    other = brackets + np.count_nonzero(data == _COMMA)
    if token_bytes + other != data.size:
        other += np.count_nonzero(data == ord(" "))
    if token_bytes + other != data.size:
        other += sum(np.count_nonzero(data == c) for c in b"\t\r\n")
    if token_bytes + other != data.size:
        raise WireFormatError("samples: expected a (nested) list of hex strings")


def decode_hex_array(
    raw: bytes | np.ndarray, num_bits: int | None
) -> tuple[np.ndarray, int, tuple[int, ...]]:
    """Decode a JSON (nested) list of hex strings into BitArray bytes.

    Args:
        raw: the bytes of the JSON array, brackets included.
        num_bits: register width; ``None`` infers it from the largest value.

    Returns:
        ``(packed uint8 array (*shape, shots, nbytes), num_bits, shape incl. shots)``.
    """
    data = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray)) else raw
    quotes = np.flatnonzero(data == _QUOTE)
    if quotes.size % 2:
        raise WireFormatError("samples: unbalanced quotes")
    starts = quotes[0::2] + 1
    ends = quotes[1::2]
    n = starts.size
    shape, brackets = _shape_of(data, quotes[0::2])
    if n:
        second = data[np.minimum(starts + 1, data.size - 1)]
        has_prefix = (ends - starts >= 2) & ((second | 32) == _X) & (data[starts] == _ZERO)
        lengths = ends - starts - 2 * has_prefix
        if np.any(lengths <= 0):
            raise WireFormatError("samples: empty hex string")
        width = int(lengths.max())
    else:
        width = 1
        lengths = ends
    if num_bits is None:
        ndigits = width
    else:
        if isinstance(num_bits, bool) or not isinstance(num_bits, int) or num_bits < 0:
            raise WireFormatError(f"num_bits: expected a non-negative integer, got {num_bits!r}")
        ndigits = max(math.ceil(num_bits / 4), 1)
        if width > ndigits:
            ndigits = width  # leading zeros are allowed; the width check below catches values
    nbytes = math.ceil(ndigits / 2)
    if n:
        _check_separators(data, n, starts, ends, brackets)
        packed = _pack_tokens(data, ends, lengths, nbytes)
    else:
        packed = np.zeros((0, nbytes), dtype=np.uint8)
    if num_bits is None:
        if packed.size and packed.any():
            top = np.flatnonzero(packed.any(axis=0))[0]
            num_bits = (nbytes - top - 1) * 8 + int(packed[:, top].max()).bit_length()
        else:
            num_bits = 1
        nbytes_needed = max(math.ceil(num_bits / 8), 1)
        packed = packed[:, nbytes - nbytes_needed :]
        nbytes = nbytes_needed
    else:
        nbytes_needed = math.ceil(num_bits / 8)
        if nbytes_needed < nbytes:
            if packed[:, : nbytes - nbytes_needed].any():
                raise WireFormatError("samples: value wider than num_bits")
            packed = packed[:, nbytes - nbytes_needed :]
        nbytes = nbytes_needed
        spare = 8 * nbytes - num_bits
        if spare and packed.size and np.any(packed[:, 0] >> (8 - spare)):
            raise WireFormatError("samples: value wider than num_bits")
    packed = np.ascontiguousarray(packed, dtype=np.uint8).reshape(*shape, nbytes)
    return packed, num_bits, shape
