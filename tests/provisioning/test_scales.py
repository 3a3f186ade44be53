"""Scales, profiles, overrides, tenant skew and integer apportionment (pure, no database)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from agentic_loadkit.provisioning.errors import InputError
from agentic_loadkit.provisioning.generate.scales import (
    MAX_ROWS_PER_TABLE,
    SCALES,
    ScaleCounts,
    allocate,
    parse_skew,
    resolve_counts,
    tenant_weights,
)
from agentic_loadkit.provisioning.schema.concepts import CONTRACT_TABLES

ISSUE_TABLE = {  # issue 3, "Scales"
    "small": (3, 30, 150, 60, 30, 15),
    "medium": (20, 500, 5_000, 2_000, 1_000, 200),
    "large": (100, 5_000, 100_000, 40_000, 20_000, 4_000),
    "xlarge": (1_000, 50_000, 1_000_000, 400_000, 200_000, 40_000),
}


@pytest.mark.parametrize("name", list(ISSUE_TABLE))
def test_named_scales_match_the_issue_exactly(name: str) -> None:
    scale, counts = resolve_counts(name)
    assert scale == name
    assert tuple(counts.as_dict().values()) == ISSUE_TABLE[name]
    assert tuple(counts.as_dict()) == CONTRACT_TABLES
    assert counts.total_rows() == sum(ISSUE_TABLE[name])
    assert SCALES[name] == counts


def test_scale_names_are_case_insensitive_and_trimmed() -> None:
    assert resolve_counts(" Large ") == ("large", SCALES["large"])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["agents=250000"], {"agents": 250_000}),
        (["agents=250_000"], {"agents": 250_000}),
        (["mcp-servers=7", "users=40"], {"mcp_servers": 7, "users": 40}),
        (["agents=5", "agents=9"], {"agents": 9}),  # the last one wins
        ([" workflows = 0 "], {"workflows": 0}),
        (["tenants=30", "users=30"], {"tenants": 30, "users": 30}),
    ],
)
def test_overrides_change_exactly_the_named_counts(overrides: list[str], expected: dict[str, int]) -> None:
    _, counts = resolve_counts("small", overrides=overrides)
    want = {**SCALES["small"].as_dict(), **expected}
    assert counts.as_dict() == want


def test_overridden_counts_are_not_named_like_the_base_scale() -> None:
    assert resolve_counts("large", overrides=["agents=250000"])[0] == "large+set"
    assert resolve_counts("large", overrides=["agents=100000"])[0] == "large"  # no count changed


def _write(tmp_path: Path, text: str, name: str = "profile.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_profile_sets_base_scale_name_and_counts_then_overrides_win(tmp_path: Path) -> None:
    text = 'scale = "medium"\nname = "soak-test"\n[counts]\nagents = 12_345\nmcp_servers = 0\n'
    path = _write(tmp_path, text)
    name, counts = resolve_counts("small", profile=path)
    assert name == "soak-test"
    assert counts == ScaleCounts(20, 500, 12_345, 2_000, 1_000, 0)
    _, counts = resolve_counts("small", profile=path, overrides=["agents=7"])
    assert counts.agents == 7 and counts.tenants == 20


def test_profile_without_name_is_named_after_its_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[counts]\nusers = 150\n", name="nightly.toml")
    name, counts = resolve_counts("large", profile=path)
    assert name == "nightly"
    assert counts == ScaleCounts(100, 150, 100_000, 40_000, 20_000, 4_000)


BAD_OVERRIDES = [
    ("agents", "agents"),
    ("agents=", "agents"),
    ("agents=-5", "-5"),
    ("agents=abc", "abc"),
    ("agents=1.5", "1.5"),
    ("agents=1e6", "1e6"),
    ("agents=__1", "__1"),
    ("agents=5=6", "5=6"),
    ("robots=5", "robots"),
    ("=5", "''"),
    ("tenants=0", "tenants=0"),
    ("users=2", "users=2"),
    (f"agents={MAX_ROWS_PER_TABLE + 1}", "agents"),
    ("tenants=300000", "tenants"),
    ("agents=0x10", "0x10"),
]


@pytest.mark.parametrize(("override", "named"), BAD_OVERRIDES)
def test_bad_overrides_are_one_sentence_naming_the_value(override: str, named: str) -> None:
    with pytest.raises(InputError) as info:
        resolve_counts("small", overrides=[override])
    message = str(info.value)
    assert named in message
    assert message.endswith(".") and "\n" not in message
    assert info.value.exit_code == 2


BAD_PROFILES = [
    ("[counts\nagents = 1\n", "line 1"),
    ('scale = "small"\n\n[counts]\nagents = = 3\n', "line 4"),
    ("colour = 'blue'\n", "'colour'"),
    ("[counts]\nrobots = 3\n", "'robots'"),
    ('[counts]\nagents = "many"\n', "agents='many'"),
    ("[counts]\nagents = 1.5\n", "agents=1.5"),
    ("[counts]\nagents = true\n", "agents=True"),
    ("[counts]\nagents = -1\n", "agents=-1"),
    ("counts = 5\n", "'counts'"),
    ('scale = "gigantic"\n', "'gigantic'"),
    ("scale = 3\n", "3"),
    ('name = "../../etc"\n', "'../../etc'"),
    ("[counts]\ntenants = 0\n", "tenants=0"),
    ("[counts]\ntenants = 10\nusers = 5\n", "users=5"),
    ("[counts]\nworkflows = 60_000_001\n", "workflows"),
]


@pytest.mark.parametrize(("text", "named"), BAD_PROFILES)
def test_bad_profiles_are_one_sentence_naming_key_value_and_file(
    tmp_path: Path, text: str, named: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        resolve_counts("small", profile=path)
    message = str(info.value)
    assert named in message
    assert str(path) in message
    assert message.endswith(".") and "\n" not in message


@pytest.mark.parametrize("kind", ["missing", "directory", "binary"])
def test_unreadable_profiles_name_the_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "p.toml"
    if kind == "directory":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError) as info:
        resolve_counts("small", profile=path)
    assert str(path) in str(info.value)


def test_unknown_scale_lists_the_known_ones() -> None:
    with pytest.raises(InputError) as info:
        resolve_counts("huge")
    assert "'huge'" in str(info.value)
    for name in SCALES:
        assert name in str(info.value)


@pytest.mark.parametrize(("text", "expected"), [("uniform", None), ("1.5", 1.5), ("0", 0.0), (" 2 ", 2.0)])
def test_parse_skew_accepts_numbers_and_uniform(text: str, expected: float | None) -> None:
    assert parse_skew(text) == expected


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "inf", "6"])
def test_parse_skew_rejects_nonsense(text: str) -> None:
    with pytest.raises(InputError):
        parse_skew(text)


def test_tenant_weights_sum_to_one_and_follow_zipf() -> None:
    weights = tenant_weights(100, 1.0, seed=3)
    assert sum(weights) == pytest.approx(1.0)
    ranked = sorted(weights, reverse=True)
    assert ranked[0] / ranked[9] == pytest.approx(10.0)  # 1/k**1
    assert ranked[0] > 20 * statistics.median(weights)


def test_tenant_weights_permutation_depends_on_the_seed_only() -> None:
    a, b = tenant_weights(50, 1.2, seed=1), tenant_weights(50, 1.2, seed=2)
    c = tenant_weights(50, 1.2, seed=1)
    assert a == c
    assert a != b
    assert sorted(a) == sorted(b)


@pytest.mark.parametrize("skew", [None, 0.0])
def test_uniform_weights_are_equal(skew: float | None) -> None:
    weights = tenant_weights(7, skew, seed=9)
    assert weights == [pytest.approx(1 / 7)] * 7


@pytest.mark.parametrize(
    ("total", "weights", "minimum"),
    [
        (100, [0.5, 0.3, 0.2], 0),
        (10, [1.0, 1.0, 1.0], 0),
        (7, [0.9, 0.05, 0.05], 1),
        (1_000_003, tenant_weights(1_000, 1.0, seed=0), 1),
        (5, [1.0] * 8, 1),  # fewer rows than parts: minimum impossible
        (0, [0.2, 0.8], 1),
    ],
)
def test_allocate_sums_exactly_and_respects_minimums(total: int, weights: list[float], minimum: int) -> None:
    parts = allocate(total, weights, minimum)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    if minimum * len(weights) <= total:
        assert min(parts) >= minimum
    else:
        assert max(parts) - min(parts) <= 1
    share = sum(weights)
    floor_each = minimum if minimum * len(weights) <= total else total // len(weights)
    rest = total - floor_each * len(weights)
    for part, w in zip(parts, weights, strict=True):
        assert abs(part - floor_each - rest * w / share) < 1.0


def test_allocate_breaks_ties_deterministically_toward_lower_indices() -> None:
    assert allocate(2, [1.0, 1.0, 1.0]) == [1, 1, 0]


@pytest.mark.parametrize(("total", "weights"), [(5, []), (-1, [1.0]), (3, [float("nan")]), (3, [-1.0, 2.0])])
def test_allocate_rejects_invalid_arguments(total: int, weights: list[float]) -> None:
    with pytest.raises(ValueError):
        allocate(total, weights)
