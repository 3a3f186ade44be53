"""The guide's load profiles as stage tables, run by one ``LoadTestShape``.

=========  =====  ==========  ========
profile    users  spawn rate  duration
=========  =====  ==========  ========
light         10       1 /s     2 min
medium        50       5 /s    10 min
heavy        200      10 /s    30 min
spike        500      50 /s     5 min
=========  =====  ==========  ========

``--load-profile NAME`` picks one.  ``--time-scale F`` compresses (F < 1) or stretches
(F <= 100) the whole shape: every stage's end time is multiplied by F and every spawn rate divided
by it, so the ramp keeps its share of the run (``--load-profile light --time-scale 0.5``
is the light shape in one minute, ramping at 2 users/s).  ``--users`` replaces the peak
user count (stages scale in proportion), ``--spawn-rate`` every stage's spawn rate, and
``--run-time`` caps the duration: with a profile Locust's common options become
overrides of the profile (the shape sets ``use_common_options``).

Locust runs the first shape class it finds, whatever the options, so exactly one shape
(``ProfileShape``) is loaded, and the scenarios' init hook detaches it from the
environment when ``--load-profile`` is not given: ``--users``/``--spawn-rate``/
``--run-time`` then work as in plain Locust.

Spawn rates and login cost: every new user logs in once, and a bcrypt login costs the
platform real CPU time, so a fast ramp (the spike profile, or any profile compressed
with F < 1, which multiplies the login rate by 1/F) can need more platform cores than
the steady load does: keep ``users/s x bcrypt time`` under the platform's cores (or
pass ``--spawn-rate``).  Logins are judged on their own gate line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from agentic_loadkit.provisioning.errors import InputError
from locust import LoadTestShape

__all__ = ["MAX_TIME_SCALE", "PROFILES", "LoadProfile", "ProfileShape", "Stage", "check_time_scale", "resolve_profile"]

MAX_TIME_SCALE = 100.0
"""The longest stretch of a profile: the heavy one, 30 min, becomes 50 hours."""


@dataclass(frozen=True)
class Stage:
    """Until ``until_s`` seconds after the start, run ``users`` users, reached at ``spawn_rate`` users/s."""

    until_s: float
    users: int
    spawn_rate: float


@dataclass(frozen=True)
class LoadProfile:
    name: str
    stages: tuple[Stage, ...]
    description: str = ""

    @property
    def duration_s(self) -> float:
        return self.stages[-1].until_s if self.stages else 0.0

    @property
    def peak_users(self) -> int:
        return max((s.users for s in self.stages), default=0)

    def users_at(self, elapsed_s: float) -> tuple[int, float] | None:
        """The (users, spawn rate) Locust should aim for ``elapsed_s`` seconds in; None when it is over."""
        for stage in self.stages:
            if elapsed_s < stage.until_s:
                return stage.users, stage.spawn_rate
        return None


PROFILES: dict[str, LoadProfile] = {
    "light": LoadProfile("light", (Stage(120, 10, 1),), "development: 10 users at 1/s for 2 min"),
    "medium": LoadProfile("medium", (Stage(600, 50, 5),), "staging: 50 users at 5/s for 10 min"),
    "heavy": LoadProfile("heavy", (Stage(1800, 200, 10),), "production simulation: 200 users at 10/s for 30 min"),
    "spike": LoadProfile("spike", (Stage(300, 500, 50),), "sudden traffic: 500 users at 50/s for 5 min"),
}


def check_time_scale(time_scale: float) -> None:
    """``InputError`` unless ``--time-scale`` is finite, above 0 and at most ``MAX_TIME_SCALE``."""
    if not math.isfinite(time_scale) or not 0 < time_scale <= MAX_TIME_SCALE:
        raise InputError(f"--time-scale must be a number above 0 and at most {MAX_TIME_SCALE:g}, not {time_scale}.")


def resolve_profile(
    name: str,
    *,
    time_scale: float = 1.0,
    users: int | None = None,
    spawn_rate: float | None = None,
    run_time: float | None = None,
) -> LoadProfile:
    """The named profile with the time scale and explicit overrides applied; ``InputError`` on bad values."""
    profile = PROFILES.get(name)
    if profile is None:
        raise InputError(f"Unknown load profile '{name}'; choose one of {', '.join(PROFILES)}.")
    check_time_scale(time_scale)
    if users is not None and users < 1:
        raise InputError(f"--users must be at least 1 with a load profile, not {users}.")
    if spawn_rate is not None and not spawn_rate > 0:
        raise InputError(f"--spawn-rate must be positive, not {spawn_rate}.")
    if run_time is not None and not run_time > 0:
        raise InputError(f"--run-time must be positive, not {run_time}.")
    peak = profile.peak_users
    stages = []
    for stage in profile.stages:
        n = stage.users if users is None or not stage.users else max(1, round(stage.users * users / peak))
        rate = spawn_rate if spawn_rate is not None else stage.spawn_rate / time_scale
        stages.append(Stage(stage.until_s * time_scale, n, rate))
    if run_time is not None:
        clipped = []
        for stage in stages:
            clipped.append(replace(stage, until_s=min(stage.until_s, run_time)))
            if stage.until_s >= run_time:
                break
        stages = clipped
    return replace(profile, stages=tuple(stages))


class ProfileShape(LoadTestShape):
    """Runs the stage table chosen by ``--load-profile``; detached (inactive) without it."""

    use_common_options = True
    profile: LoadProfile | None = None

    def tick(self) -> tuple[int, float] | None:
        if self.profile is None:
            return None
        return self.profile.users_at(self.get_run_time())
