"""The timeline of a model's turn from explicit marks: each gap goes to its part, the parts add up."""

from __future__ import annotations

from pipeline.sweep.timeline import PassMarks, build_timeline


def test_one_pass_splits_the_turn_into_its_parts() -> None:
    t = build_timeline(100.0, [PassMarks(130.0, 190.0, 200.0, 205.0)], 207.5)
    assert (t.start_s, t.busy_s, t.tail_s, t.scoring_s, t.stop_s) == (30.0, 60.0, 10.0, 5.0, 2.5)
    assert t.queued_s == 0 and t.wall_s == 107.5
    assert t.idle_fraction == round((107.5 - 70) / 107.5, 3)


def test_a_second_pass_after_a_restart_adds_its_wait_to_start() -> None:
    passes = [PassMarks(110.0, 150.0, 160.0, 161.0), PassMarks(181.0, 185.0, 190.0, 191.0)]
    t = build_timeline(100.0, passes, 192.0, queued_s=40.0)
    assert (t.start_s, t.busy_s, t.tail_s, t.scoring_s, t.stop_s) == (30.0, 44.0, 15.0, 2.0, 1.0)
    assert t.wall_s == 132.0  # the Slurm wait is part of the wall, not of the allocation
    assert t.idle_fraction == round((92 - 59) / 92, 3)


def test_a_pass_that_sent_nothing_and_a_turn_without_passes() -> None:
    resumed = build_timeline(0.0, [PassMarks(None, None, 5.0, 6.0)], 7.0)  # everything stored already
    assert (resumed.start_s, resumed.busy_s, resumed.tail_s, resumed.scoring_s) == (5.0, 0.0, 0.0, 1.0)
    never = build_timeline(0.0, [], 42.0)  # the server never came up
    assert never.start_s == 42.0 and never.wall_s == 42.0 and never.idle_fraction == 1.0


def test_rounding_never_breaks_the_sum() -> None:
    t = build_timeline(0.04, [PassMarks(0.16, 0.26, 0.36, 0.46)], 0.5)
    parts = t.queued_s + t.start_s + t.busy_s + t.tail_s + t.scoring_s + t.stop_s
    assert round(parts, 1) == t.wall_s == round(0.5 - 0.04, 1)


def test_released_before_scoring_the_stop_comes_first_and_scoring_is_no_gpu_time() -> None:
    """The server's last model: generation ends at 200, the server is stopped and its GPUs released at 204,
    scoring (begun at 200, beside the stop) ends at 215, the eval process exits at 216."""
    t = build_timeline(100.0, [PassMarks(130.0, 190.0, 200.0, 215.0)], 216.0, released=204.0)
    assert (t.start_s, t.busy_s, t.tail_s, t.stop_s, t.scoring_s) == (30.0, 60.0, 10.0, 4.0, 12.0)
    assert t.wall_s == 116.0
    assert t.idle_fraction == round((104 - 70) / 104, 3)  # the allocation ends at the release
    assert t.allocated_s == 104.0 and "released_s" not in t.as_json()
    held = build_timeline(100.0, [PassMarks(130.0, 190.0, 200.0, 215.0)], 216.0, released=216.0)
    assert (held.scoring_s, held.stop_s) == (15.0, 1.0)  # scored on the held GPUs: counted in them
    assert held.idle_fraction == round((116 - 70) / 116, 3)


def test_a_turn_that_only_scored_holds_no_gpu() -> None:
    t = build_timeline(0.0, [PassMarks(None, None, 0.0, 3.0)], 3.2, released=0.0)
    assert (t.start_s, t.stop_s, t.scoring_s, t.wall_s, t.idle_fraction) == (0.0, 0.0, 3.2, 3.2, 0.0)
