import math

import pytest

from unires.weights import (
    AVERAGE_WEIGHTS,
    WeightsError,
    grid_size_bruteforce,
    parse_weights,
    search_grid,
    validate_weights,
)


def test_paper_grid_has_1512_points():
    grid = search_grid(-0.2, 1.2, 0.2)
    assert len(grid) == 1512
    for w in grid:
        assert math.isclose(sum(w.values()), 1.0, abs_tol=1e-9)
        assert sum(v < 0 for v in w.values()) <= 1
        assert set(w) == {"br", "sr", "md", "dd", "dn", "downlq"}
    assert len({tuple(w.values()) for w in grid}) == 1512


def test_unit_interval_grid_has_252_points():
    assert len(search_grid(0.0, 1.0, 0.2)) == 252


def test_grid_matches_the_papers_snippet():
    # The paper's brute-force snippet (App. A.2) on the same ranges.
    assert grid_size_bruteforce(-0.2, 1.2, 0.2, 6) == 1512
    assert grid_size_bruteforce(0.0, 1.0, 0.2, 6) == 252
    assert len(search_grid(-0.2, 0.6, 0.2, tasks=("br", "md", "dn"))) == grid_size_bruteforce(
        -0.2, 0.6, 0.2, 3
    )


def test_grid_with_struck_out_tasks():
    grid = search_grid(-0.2, 1.2, 0.2, tasks=("sr", "md", "dd", "dn", "downlq"))
    assert all("br" not in w for w in grid)
    assert len(grid) < 1512


def test_parse_and_validate():
    assert parse_weights("md=0.6, dn=-0.2,downlq=0.6") == {"md": 0.6, "dn": -0.2, "downlq": 0.6}
    assert parse_weights("MD=1") == {"md": 1.0}


@pytest.mark.parametrize(
    "text, match",
    [
        ("md=0.5", "sum to 1"),
        ("md=0.5,xx=0.5", "unknown task"),
        ("md=abc", "not a number"),
        ("md", "task=value"),
        ("md=nan,dn=1", "not finite"),
        ("", "no task weights"),
    ],
)
def test_bad_weights_are_clear_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_weights(text)


def test_sum_tolerance_is_1e6():
    validate_weights({"md": 0.5, "dn": 0.5 + 5e-7})
    with pytest.raises(WeightsError):
        validate_weights({"md": 0.5, "dn": 0.5 + 5e-6})


def test_average_weights_sum_to_one():
    validate_weights(AVERAGE_WEIGHTS)
