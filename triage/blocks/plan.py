"""How many random reads a sample needs: the hypergeometric bound behind ``triage sample``.

Model (docs/sampling.md has the derivation). The media of ``media_bytes`` is cut into S slots
of ``R`` blocks of ``B`` bytes (``R*B`` bytes each, the last one possibly shorter). A sample
reads ``n`` distinct slots drawn uniformly at random without replacement; each read covers its
slot plus ``B - 512`` bytes beyond it and is hashed at every 512-byte offset, so every block
whose first byte lies in a drawn slot, at any sector alignment, is hashed whole. ``m`` distinct
blocks of the set's material start in at least ``k = ceil(m / R)`` different slots, whatever
their placement (R per slot at most). Hence

    P(miss) <= C(S - k, n) / C(S, n) = prod_{j<k} (S - n - j) / (S - j)

and the plan takes the smallest ``n`` with ``1 - P(miss) >= confidence``. With R = 1 this is
the plain hypergeometric of single-block draws; with R > 1 it is conservative: material packed
into whole slots is the hardest case, scattered material is found sooner. The bound is computed
as a sum of ``log1p`` terms (exact to rounding for S up to 2^40 and beyond); the lgamma form
``lnC(S-k,n) - lnC(S,n)`` is kept as a cross-check (``log_miss_lgamma``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from triage.errors import UsageError

ALIGN = 512  # sector: every file system stores file data at a multiple of it
MIB = 1 << 20


@dataclass(frozen=True)
class Plan:
    """A sample's size and what it promises."""

    media_bytes: int
    block_size: int
    read_blocks: int  # R: blocks per read slot
    slots: int  # S
    material_blocks: int  # m
    material_slots: int  # k = ceil(m / R)
    confidence: float  # asked for
    reads: int  # n
    min_mib: float

    @property
    def slot_bytes(self) -> int:
        return self.read_blocks * self.block_size

    @property
    def read_bytes(self) -> int:
        """Bytes one read asks for: its slot plus what completes a block starting in it."""
        return self.slot_bytes + self.block_size - ALIGN

    @property
    def media_blocks(self) -> int:
        return self.media_bytes // self.block_size

    def achieved(self, reads_ok: int | None = None) -> float:
        """Probability of at least one hit given ``reads_ok`` successful reads (default all)."""
        n = self.reads if reads_ok is None else reads_ok
        return 1.0 - math.exp(log_miss(self.slots, self.material_slots, n))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(slot_bytes=self.slot_bytes, read_bytes=self.read_bytes,
                 media_blocks=self.media_blocks, achieved=self.achieved())
        return d


def log_miss(slots: int, k: int, n: int) -> float:
    """ln P(no drawn slot holds material) = ln[C(S-k, n) / C(S, n)]
    = sum_{j<k} ln(1 - n / (S - j)); -inf when n > S - k (a miss is impossible)."""
    if n <= 0 or k <= 0:
        return 0.0
    if n > slots - k:
        return -math.inf
    j = np.arange(k, dtype=np.float64)
    return float(np.sum(np.log1p(-n / (slots - j))))


def log_miss_lgamma(slots: int, k: int, n: int) -> float:
    """The same through lgamma (the textbook form; loses digits for S near 2^40)."""
    if n > slots - k:
        return -math.inf
    lg = math.lgamma
    return (lg(slots - k + 1) - lg(slots - k - n + 1) - lg(n + 1)
            - (lg(slots + 1) - lg(slots - n + 1) - lg(n + 1)))


def reads_needed(slots: int, k: int, confidence: float) -> int:
    """Smallest n with 1 - P(miss) >= confidence (P(miss) falls as n grows: bisection)."""
    target = math.log1p(-confidence)
    lo, hi = 1, slots - k + 1  # at hi a miss is impossible
    while lo < hi:
        mid = (lo + hi) // 2
        if log_miss(slots, k, mid) <= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def make_plan(media_bytes: int, block_size: int, confidence: float = 0.99,
              min_mib: float = 20.0, read_blocks: int = 1) -> Plan:
    """The plan for one medium; ``UsageError`` (exit 2) for parameters that promise nothing."""
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"--confidence must lie strictly between 0 and 1 (got {confidence})")
    if block_size < ALIGN or block_size % ALIGN:
        raise UsageError(f"block size {block_size} is not a multiple of {ALIGN}")
    if read_blocks < 1:
        raise UsageError("a read covers at least one block")
    if not min_mib > 0:
        raise UsageError(f"--min-mib must be more than 0 (got {min_mib})")
    m = math.ceil(min_mib * MIB / block_size)
    if m * block_size > media_bytes:
        raise UsageError(f"--min-mib {min_mib:g} is more than the media holds "
                         f"({media_bytes / MIB:,.2f} MiB): no sample can promise anything")
    slot = read_blocks * block_size
    slots = -(-media_bytes // slot)
    k = -(-m // read_blocks)
    n = reads_needed(slots, k, confidence)
    return Plan(media_bytes, block_size, read_blocks, slots, m, k, confidence, n, min_mib)


def draw_slots(plan: Plan, seed: int, index: int = 0) -> np.ndarray:
    """The n slots to read, ascending (a spinning disk then seeks forward only). Reproducible:
    ``numpy.random.default_rng([seed, index]).choice(S, n, replace=False)`` sorted (``index``:
    the evidence's position in the command, so two media never share a draw)."""
    rng = np.random.default_rng([seed, index])
    if plan.reads >= plan.slots:
        return np.arange(plan.slots, dtype=np.int64)
    return np.sort(rng.choice(plan.slots, size=plan.reads, replace=False).astype(np.int64))


def statement(plan: Plan, achieved: float, found: bool, read_errors: int) -> str:
    """The confidence statement in words, as the examiner may repeat it."""
    pct = _pct(achieved)
    head = (f"if {plan.min_mib:g} MiB or more of this set's material were on this device, "
            f"this sample would have found some with probability \u2265 {pct}")
    tail = ": some was found" if found else ": none was found"
    if read_errors:
        tail += (f" ({read_errors:,} of {plan.reads:,} reads failed and count as reads that "
                 f"found nothing; {_pct(plan.confidence)} was asked for)")
    return head + tail


def _pct(p: float) -> str:
    """Rounded down to 0.01 %, never up: 0.98996 is '98.99%', not '99%'."""
    scaled = math.floor(p * 10000 + 1e-9) / 100
    return f"{scaled:.2f}".rstrip("0").rstrip(".") + "%"
