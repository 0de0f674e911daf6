"""TickConfig without a database: every bad value gets its own line, plain data is checked like
flags, and a run's ticks get their seeds from the run's."""

from __future__ import annotations

import pytest

from generators.config import ConfigError, TickConfig


def test_defaults_are_valid_and_every_bad_value_gets_its_own_line() -> None:
    TickConfig()
    with pytest.raises(ConfigError) as err:
        TickConfig(wishlist_adds=-1, taste=2.0, seed=-5, ratings=True, max_retries=99)
    lines = str(err.value).splitlines()
    assert len(lines) == 5
    assert lines[0] == "wishlist_adds must be between 0 and 1,000,000 (got -1)"
    assert any(line.startswith("ratings must be a whole number") for line in lines)
    assert any(line.startswith("taste must be between 0 and 1") for line in lines)
    assert any(line.startswith("seed must be between 0") for line in lines)
    assert any(line.startswith("max_retries must be between 0 and 20") for line in lines)


def test_config_from_plain_data_refuses_unknown_keys() -> None:
    config = TickConfig.from_mapping({"wishlist_adds": 10, "seed": 3, "taste": 0})
    assert (config.wishlist_adds, config.seed, config.taste) == (10, 3, 0)
    with pytest.raises(ConfigError, match=r"unknown setting 'wishlist_add' \(known: "):
        TickConfig.from_mapping({"wishlist_add": 10})
    with pytest.raises(ConfigError, match="new_users must be a whole number"):
        TickConfig.from_mapping({"new_users": "5"})


def test_a_seeded_run_gives_tick_i_the_seed_plus_i() -> None:
    config = TickConfig(ratings=7, seed=40)
    assert [config.for_tick(i).seed for i in range(3)] == [40, 41, 42]
    assert config.for_tick(2).ratings == 7
    assert TickConfig(seed=2**63 - 1).for_tick(1).seed == 0  # stays a valid seed
    unseeded = TickConfig()
    assert unseeded.for_tick(5) is unseeded  # each tick draws its own
