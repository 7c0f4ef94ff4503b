"""The public surface is deliberate: pin it so that changes to it are deliberate too."""

from __future__ import annotations

import lrkit


def test_public_names_are_pinned() -> None:
    assert sorted(lrkit.__all__) == sorted(
        [
            "FineTuneResult",
            "FinderResult",
            "History",
            "ReduceOnPlateau",
            "ScheduleLR",
            "Task",
            "TuneResult",
            "describe_groups",
            "find_lr",
            "fine_tune",
            "fit",
            "fit_many",
            "freeze",
            "get_task",
            "logspace",
            "param_groups",
            "plot_schedule",
            "schedules",
            "suggest",
            "sweep",
            "to_torch",
            "tune",
            "unfreeze",
        ]
    )
    for name in lrkit.__all__:
        assert getattr(lrkit, name) is not None


def test_package_ships_type_information() -> None:
    from importlib.resources import files

    assert files("lrkit").joinpath("py.typed").is_file()
