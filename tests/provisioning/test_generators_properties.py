"""Property-based tests (hypothesis): the profile parser, apportionment and the generators' invariants."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from agentic_loadkit.provisioning.errors import InputError
from agentic_loadkit.provisioning.generate.dataset import Dataset, GenerationSpec, IdSpace, IntegerIds, UuidIds
from agentic_loadkit.provisioning.generate.scales import SCALES, ScaleCounts, allocate, resolve_counts
from agentic_loadkit.provisioning.schema.concepts import CONTRACT_TABLES
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from row_invariants import HASHES, check_invariants, generate

QUICK = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

valid_counts = st.integers(1, 40).flatmap(
    lambda tenants: st.builds(
        ScaleCounts,
        tenants=st.just(tenants),
        users=st.integers(tenants, tenants + 60),
        agents=st.integers(0, 120),
        workflows=st.integers(0, 60),
        collections=st.integers(0, 30),
        mcp_servers=st.integers(0, 30),
    )
)


def _resolve_text(text: str, overrides: tuple[str, ...] = ()) -> tuple[str, ScaleCounts]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "profile.toml"
        path.write_text(text, encoding="utf-8")
        return resolve_counts("small", profile=path, overrides=overrides)


@QUICK
@given(
    base=st.sampled_from(list(SCALES)),
    counts=valid_counts,
    keys=st.sets(st.sampled_from(CONTRACT_TABLES)),
    underscores=st.booleans(),
)
def test_any_valid_profile_parses_to_exactly_its_counts(
    base: str, counts: ScaleCounts, keys: set[str], underscores: bool
) -> None:
    chosen = {k: v for k, v in counts.as_dict().items() if k in keys}
    expected = {**SCALES[base].as_dict(), **chosen}
    # mixes of base and profile that break the user rule are covered by the next property
    assume(expected["tenants"] >= 1 and expected["users"] >= expected["tenants"])
    lines = [f'scale = "{base}"', "[counts]"]
    lines += [f"{k} = {v:_}" if underscores else f"{k} = {v}" for k, v in chosen.items()]
    name, got = _resolve_text("\n".join(lines) + "\n")
    assert name == base
    assert got.as_dict() == expected


@QUICK
@given(text=st.text(max_size=120))
def test_arbitrary_profile_text_parses_or_gives_one_input_error_sentence(text: str) -> None:
    try:
        _, counts = _resolve_text(text)
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc).endswith(".")
    else:
        assert counts.tenants >= 1 and counts.users >= counts.tenants
        assert all(isinstance(v, int) and v >= 0 for v in counts.as_dict().values())


@QUICK
@given(
    key=st.one_of(st.sampled_from(CONTRACT_TABLES), st.text(max_size=12)),
    value=st.one_of(st.integers(-10, 10**9).map(str), st.text(max_size=12)),
    separator=st.sampled_from(["=", " = ", ":", ""]),
)
def test_arbitrary_overrides_apply_exactly_or_give_an_input_error(
    key: str, value: str, separator: str
) -> None:
    item = f"{key}{separator}{value}"
    try:
        _, counts = resolve_counts("medium", overrides=[item])
    except InputError as exc:
        assert str(exc).endswith(".")
        return
    k, v = item.split("=", 1)
    k = k.strip().lower().replace("-", "_")
    assert counts.as_dict()[k] == int(v.strip().replace("_", ""))
    assert sum(1 for a, b in zip(counts.as_dict().values(), SCALES["medium"].as_dict().values(), strict=True)
               if a != b) <= 1


@QUICK
@given(
    total=st.integers(0, 10**7),
    weights=st.lists(st.floats(0, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=60),
    minimum=st.integers(0, 3),
)
def test_allocate_is_exact_and_within_one_of_the_fair_share(
    total: int, weights: list[float], minimum: int
) -> None:
    parts = allocate(total, weights, minimum)
    assert sum(parts) == total and len(parts) == len(weights)
    n = len(weights)
    floor_each = minimum if minimum * n <= total else total // n
    assert min(parts) >= floor_each
    rest, share = total - floor_each * n, math.fsum(weights)
    if share > 0:
        for part, w in zip(parts, weights, strict=True):
            assert abs(part - floor_each - rest * w / share) < 1.0 + 1e-9 * total


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    counts=valid_counts,
    seed=st.integers(0, 3),  # pools are cached per seed: a few seeds keep this quick
    skew=st.sampled_from([None, 0.0, 0.5, 1.0, 2.5, 5.0]),
    slots=st.integers(1, 16),
    inactive=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    deleted=st.sampled_from([0.0, 0.03, 0.5, 1.0]),
    uuid_ids=st.booleans(),
    batch_size=st.integers(1, 64),
)
def test_generated_data_keeps_every_invariant(
    counts: ScaleCounts, seed: int, skew: float | None, slots: int, inactive: float, deleted: float,
    uuid_ids: bool, batch_size: int,
) -> None:
    spec = GenerationSpec(seed=seed, namespace="p7q8r9s0", counts=counts, skew=skew, password_slots=slots,
                          inactive_user_share=inactive, deleted_agent_share=deleted)
    dataset = Dataset(spec, HASHES[:slots])
    ids: IdSpace
    if uuid_ids:
        ids = UuidIds("p7q8r9s0")
    else:
        ids = IntegerIds({t: 10**6 * (k + 1) for k, t in enumerate(CONTRACT_TABLES)})
    check_invariants(dataset, generate(dataset, ids, batch_size), ids)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), counts=valid_counts)
def test_any_seed_generates_valid_data(seed: int, counts: ScaleCounts) -> None:
    spec = GenerationSpec(seed=seed, namespace="anyseed1", counts=counts, password_slots=len(HASHES))
    dataset = Dataset(spec, HASHES)
    ids = UuidIds("anyseed1")
    check_invariants(dataset, generate(dataset, ids), ids)


toml_values = st.one_of(
    st.integers(-5, 60_000_000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(alphabet="abc19_", max_size=6),
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    return repr(value)


@QUICK
@given(entries=st.dictionaries(st.sampled_from([*CONTRACT_TABLES, "robots", "Agents", "mcp-servers"]), toml_values,
                               max_size=6))
def test_structured_profiles_apply_exactly_or_name_the_offending_key(entries: dict[str, object]) -> None:
    text = "[counts]\n" + "".join(f'"{k}" = {_toml_value(v)}\n' for k, v in entries.items())
    normalised = {k.lower().replace("-", "_"): v for k, v in entries.items()}
    assume(len(normalised) == len(entries))  # two spellings of one key: which wins is not a promise
    try:
        _, counts = _resolve_text(text)
    except InputError as exc:
        message = str(exc)
        assert message.endswith(".") and "\n" not in message
        bad = [k for k, v in normalised.items()
               if k not in CONTRACT_TABLES or isinstance(v, bool) or not isinstance(v, int) or v < 0
               or v > (200_000 if k == "tenants" else 50_000_000)]
        merged = {**SCALES["small"].as_dict(), **{k: v for k, v in normalised.items() if k in CONTRACT_TABLES}}
        broken_rule = not bad and (merged["tenants"] < 1 or merged["users"] < merged["tenants"])
        assert broken_rule or any(k in message for k in bad)
    else:
        assert counts.as_dict() == {**SCALES["small"].as_dict(), **normalised}
