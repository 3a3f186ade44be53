"""How much data a run makes: named scales, TOML profiles, ``key=value`` overrides, tenant skew.

Scales are data (row counts per table), never code paths: a profile or an override
changes the counts and nothing else.  Every bad input becomes one ``InputError``
sentence naming the key, the value and, for profiles, the file.

Tenant sizes follow a Zipf-like law (a few large tenants, many small ones), because a
fleet where every tenant is equal hides the hot-tenant problems a load test is for.
"""

from __future__ import annotations

import math
import random
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType

from ..errors import InputError
from ..files import read_input_text
from ..schema.concepts import CONTRACT_TABLES

__all__ = [
    "DEFAULT_SKEW",
    "MAX_ROWS_PER_TABLE",
    "MAX_SKEW",
    "MAX_TENANTS",
    "SCALES",
    "ScaleCounts",
    "allocate",
    "parse_skew",
    "resolve_counts",
    "tenant_weights",
]


#: Above this a count is almost certainly a typo (and would not fit the disk anyway).
MAX_ROWS_PER_TABLE = 50_000_000
#: Per-tenant arrays are the only state proportional to a count; this keeps them small.
MAX_TENANTS = 200_000
DEFAULT_SKEW = 1.0
MAX_SKEW = 5.0

_PROFILE_KEYS = ("scale", "name", "counts")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_INT_RE = re.compile(r"^[0-9]+(?:_[0-9]+)*$")


@dataclass(frozen=True)
class ScaleCounts:
    """Rows per table for one run (tenants first, children after)."""

    tenants: int
    users: int
    agents: int
    workflows: int
    collections: int
    mcp_servers: int

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def total_rows(self) -> int:
        return sum(self.as_dict().values())


SCALES: Mapping[str, ScaleCounts] = MappingProxyType(
    {
        "small": ScaleCounts(3, 30, 150, 60, 30, 15),
        "medium": ScaleCounts(20, 500, 5_000, 2_000, 1_000, 200),
        "large": ScaleCounts(100, 5_000, 100_000, 40_000, 20_000, 4_000),
        "xlarge": ScaleCounts(1_000, 50_000, 1_000_000, 400_000, 200_000, 40_000),
    }
)


def _known_scales() -> str:
    return ", ".join(SCALES)


def _scale_by_name(name: object, *, source: str) -> ScaleCounts:
    if not isinstance(name, str) or name.strip().lower() not in SCALES:
        raise InputError(f"Unknown scale {name!r}{source}; known scales: {_known_scales()}.")
    return SCALES[name.strip().lower()]


def _normalise_key(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _check_count(key: str, value: int, *, source: str) -> None:
    if value < 0:
        raise InputError(f"Count {key}={value}{source} is negative; counts must be 0 or more.")
    cap = MAX_TENANTS if key == "tenants" else MAX_ROWS_PER_TABLE
    if value > cap:
        raise InputError(f"Count {key}={value:_}{source} is above the limit of {cap:_} rows.")


def _check_unknown_key(key: str, *, source: str) -> None:
    if key not in CONTRACT_TABLES:
        raise InputError(f"Unknown count {key!r}{source}; known counts: {', '.join(CONTRACT_TABLES)}.")


def _load_profile(path: Path) -> dict[str, object]:
    text = read_input_text(path, f"Profile {path}")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's message ends with "(at line N, column M)": that is the place to look.
        raise InputError(f"Profile {path} is not valid TOML: {exc}.") from None


def _apply_profile(path: Path, base: ScaleCounts) -> tuple[str, ScaleCounts]:
    data = _load_profile(path)
    source = f" in profile {path}"
    for key in data:
        if key not in _PROFILE_KEYS:
            raise InputError(
                f"Unknown key {key!r}{source}; a profile may hold only {', '.join(_PROFILE_KEYS)}."
            )
    name: str | None = None
    if "scale" in data:
        base = _scale_by_name(data["scale"], source=source)
        name = str(data["scale"]).strip().lower()
    if "name" in data:
        value = data["name"]
        if not isinstance(value, str) or not _NAME_RE.match(value):
            raise InputError(
                f"Profile name {value!r}{source} must be 1-64 letters, digits, '.', '_' or '-'."
            )
        name = value
    counts_table = data.get("counts", {})
    if not isinstance(counts_table, dict):
        raise InputError(f"Key 'counts'{source} must be a table ([counts]), not {counts_table!r}.")
    updates: dict[str, int] = {}
    for raw_key, value in counts_table.items():
        key = _normalise_key(raw_key)
        _check_unknown_key(key, source=source)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"Count {key}={value!r}{source} is not a whole number.")
        _check_count(key, value, source=source)
        updates[key] = value
    return (name or path.stem), replace(base, **updates)


def _apply_override(item: str, counts: ScaleCounts) -> ScaleCounts:
    if not isinstance(item, str) or "=" not in item:
        raise InputError(f"Override {item!r} must look like key=value, e.g. agents=250000.")
    raw_key, raw_value = item.split("=", 1)
    key = _normalise_key(raw_key)
    source = f" (from --set {item.strip()})"
    _check_unknown_key(key, source=source)
    text = raw_value.strip()
    if text.startswith("-") and _INT_RE.match(text[1:]):
        raise InputError(f"Count {key}={text}{source} is negative; counts must be 0 or more.")
    if not _INT_RE.match(text.removeprefix("+")):
        raise InputError(f"Count {key}={text!r}{source} is not a whole number.")
    value = int(text.replace("_", ""))
    _check_count(key, value, source=source)
    return replace(counts, **{key: value})


def _check_consistent(counts: ScaleCounts, *, source: str) -> None:
    if counts.tenants < 1:
        raise InputError(f"Count tenants=0{source} is not allowed; a run needs at least one tenant.")
    if counts.users < counts.tenants:
        raise InputError(
            f"Count users={counts.users} is below tenants={counts.tenants}{source}; "
            "every tenant needs at least one user."
        )


def resolve_counts(
    scale: str = "small", *, profile: Path | None = None, overrides: Sequence[str] = ()
) -> tuple[str, ScaleCounts]:
    """The run's scale name and counts: the named scale, then the profile, then ``key=value`` overrides.

    A profile's own ``scale = "..."`` replaces ``scale`` as the base; its ``name`` (else the
    file's stem) becomes the returned name; ``--set`` overrides that change a count add
    ``+set`` to it (``large+set``).  Raises ``InputError`` for anything malformed.
    """
    counts = _scale_by_name(scale, source="")
    name = scale.strip().lower()
    if profile is not None:
        name, counts = _apply_profile(Path(profile), counts)
    base = counts
    for item in overrides:
        counts = _apply_override(item, counts)
    if counts != base:  # the ledger and the summary must not call overridden counts by the base's name
        name = f"{name}+set"
    if overrides:
        source = f" (after --set {', '.join(str(o).strip() for o in overrides)})"
    else:
        source = f" in profile {profile}" if profile is not None else ""
    _check_consistent(counts, source=source)
    return name, counts


def parse_skew(value: str | float | None) -> float | None:
    """``--skew`` as given on the command line: a number in [0, MAX_SKEW], or ``uniform`` (→ None)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("uniform", "none", "flat"):
            return None
        try:
            number = float(text)
        except ValueError:
            raise InputError(f"Skew {value!r} is neither a number nor 'uniform'.") from None
    else:
        number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= MAX_SKEW:
        raise InputError(f"Skew {value!r} must be between 0 and {MAX_SKEW:g}, or 'uniform'.")
    return number


def tenant_weights(n_tenants: int, skew: float | None, seed: int) -> list[float]:
    """Each tenant's share of every table: the k-th largest ∝ 1/k**skew, ranks shuffled by the seed.

    ``None`` (or 0) gives equal shares.  The shares sum to 1.  ``skew`` has passed ``parse_skew``.
    """
    if n_tenants < 1:
        raise ValueError("n_tenants must be at least 1")
    if skew is None or skew == 0:
        return [1.0 / n_tenants] * n_tenants
    raw = [1.0 / (k**skew) for k in range(1, n_tenants + 1)]
    total = math.fsum(raw)
    ranked = [w / total for w in raw]
    order = list(range(n_tenants))
    random.Random(f"tenant-ranks/{seed}").shuffle(order)
    weights = [0.0] * n_tenants
    for rank, tenant in enumerate(order):
        weights[tenant] = ranked[rank]
    return weights


def allocate(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder method).

    The parts sum to exactly ``total``.  Every part gets ``minimum`` first when
    ``minimum * len(weights) <= total``; otherwise every part gets ``total // len(weights)``
    and the rest follows the weights.  Ties go to the lower index, so the result is
    deterministic.
    """
    n = len(weights)
    if n == 0:
        raise ValueError("weights must not be empty")
    if total < 0 or minimum < 0:
        raise ValueError("total and minimum must be non-negative")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError("weights must be finite and non-negative")
    floor_each = minimum if minimum * n <= total else total // n
    rest = total - floor_each * n
    weight_sum = math.fsum(weights)
    if weight_sum <= 0:
        weights = [1.0] * n
        weight_sum = float(n)
    quotas = [rest * w / weight_sum for w in weights]
    parts = [int(q) for q in quotas]
    leftover = rest - sum(parts)
    # Most fractional remainder first; float rounding can leave leftover slightly outside [0, n].
    by_remainder = sorted(range(n), key=lambda i: (parts[i] - quotas[i], i))
    i = 0
    while leftover > 0:
        parts[by_remainder[i % n]] += 1
        leftover -= 1
        i += 1
    i = n - 1
    while leftover < 0:
        j = by_remainder[i % n]
        if parts[j] > 0:
            parts[j] -= 1
            leftover += 1
        i -= 1
    return [p + floor_each for p in parts]
