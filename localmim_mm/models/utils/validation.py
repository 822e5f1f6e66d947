"""Build-time checks shared by the LocalMIM modules; each error names the value and the fix."""
from fractions import Fraction
from typing import List, Sequence


def check_cell_sizes(cell_sizes: Sequence[int], owner: str) -> List[int]:
    cell_sizes = list(cell_sizes)
    if not cell_sizes:
        raise ValueError(f'{owner}: cell_sizes is empty; give one cell size per supervised layer')
    for k in cell_sizes:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f'{owner}: cell size {k!r} in cell_sizes={cell_sizes} must be a '
                             'positive integer number of pixels')
    return cell_sizes


def check_taps(taps: Sequence[int], count: int, owner: str, unit: str) -> List[int]:
    """Tap indices (``out_indices``): integers in ``0..count-1``, strictly increasing."""
    taps = list(taps)
    if not taps:
        raise ValueError(f'{owner}: out_indices is empty; tap at least one {unit}')
    for t in taps:
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < count:
            raise ValueError(f'{owner}: {unit} index {t!r} in out_indices={taps} is outside '
                             f'0..{count - 1} (depth {count})')
    if len(set(taps)) != len(taps):
        raise ValueError(f'{owner}: out_indices={taps} has duplicate taps; each supervised '
                         f'{unit} may appear once')
    if taps != sorted(taps):
        raise ValueError(f'{owner}: out_indices={taps} must be strictly increasing (low to high)')
    return taps


def check_scales(scales: Sequence[float], owner: str) -> List[float]:
    """Scales must be powers of two (4, 2, 1, 0.5, ...): the mask is repeated or 2^n-pooled."""
    scales = list(scales)
    if not scales:
        raise ValueError(f'{owner}: scales is empty; give one scale per supervised layer')
    for s in scales:
        frac = Fraction(s).limit_denominator(1024) if s > 0 else None
        if frac is None or float(frac) != float(s) or not _is_power_of_two(frac):
            raise ValueError(f'{owner}: scale {s!r} in scales={scales} is not a power of two; '
                             'use values such as 4, 2, 1, 0.5')
    return scales


def _is_power_of_two(frac: Fraction) -> bool:
    num, den = frac.numerator, frac.denominator
    return (num & (num - 1)) == 0 and (den & (den - 1)) == 0 and (num == 1 or den == 1)
