"""Config file names that are not settings: helpers ignored, near misses warned, old names noted."""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterable, Mapping
from typing import NamedTuple

# Unknown names holding these types may be misspelt settings; other objects (a logger, a
# path) are things the file made for its own use.
PLAIN_DATA = (type(None), bool, int, float, str, bytes, list, tuple, dict, set, frozenset)

# Names from old gunicorn versions, or from the tutorials gunicorn configs are copied from:
# gunicorn 27 ignores them, so corral does too, saying what took their place.
OLD_NAMES = {
    "debug": "gunicorn removed it in 19.0; use reload = True and loglevel = 'debug'",
    "logfile": "gunicorn's name before errorlog; set errorlog",
    "command": "a supervisor setting, not a gunicorn one; nothing reads it",
    "django_settings": "gunicorn removed it with gunicorn_django; set DJANGO_SETTINGS_MODULE "
    "with raw_env",
    "x_forwarded_for_header": "gunicorn removed it; log the client with the "
    "%({x-forwarded-for}i)s atom in access_log_format",
}

# Kinds: near (plain value close to a setting), hook (function close to a hook), old (OLD_NAMES),
# env (CORRAL_* variable close to a setting's), plain (any other plain value), noeffect
# (a known setting that means nothing where it was given).
_WARNED = ("near", "hook", "env")


class Unknown(NamedTuple):
    """One name that is not a setting, where it was found, and what it might have meant."""

    name: str
    source: str
    kind: str
    hint: str = ""

    @property
    def level(self) -> str:
        """WARNING for likely typos, INFO for the rest."""
        return "WARNING" if self.kind in _WARNED else "INFO"

    def message(self) -> str | None:
        """The line logged at start; None for an ignored helper (plain), which is not logged."""
        if self.kind == "near":
            return (
                f"{self.source}: unknown setting {self.name!r} ignored "
                f"(did you mean {self.hint!r}?)"
            )
        if self.kind == "hook":
            return (
                f"{self.source}: {self.name!r} is not a server hook, ignored "
                f"(did you mean {self.hint!r}?)"
            )
        if self.kind == "old":
            return (
                f"{self.source}: {self.name!r} is not a gunicorn 27 setting, ignored: {self.hint}"
            )
        if self.kind == "env":
            return f"unknown environment variable {self.name} ignored (did you mean {self.hint}?)"
        if self.kind == "noeffect":
            return f"{self.source}: {self.name!r} {self.hint}"
        return None

    def fatal(self) -> str | None:
        """The error under strict_config; None when strict_config does not refuse it."""
        strict = "strict_config makes unknown names an error"
        if self.kind == "noeffect":
            return None
        if self.kind == "env":
            return f"unknown environment variable {self.name} (did you mean {self.hint}?); {strict}"
        if self.kind == "hook":
            what = f"{self.name!r} is not a server hook (did you mean {self.hint!r}?)"
        elif self.kind == "near":
            what = f"unknown setting {self.name!r} (did you mean {self.hint!r}?)"
        elif self.kind == "old":
            what = f"unknown setting {self.name!r} (an old gunicorn setting: {self.hint})"
        else:
            what = f"unknown setting {self.name!r}"
        return f"{self.source}: {what}; {strict} (name helper variables with a leading '_')"


def classify(
    name: str,
    value: object,
    source: str,
    settings: Mapping[str, Iterable[str]],
    hooks: Iterable[str],
) -> Unknown | None:
    """What an unknown module-level name of a config file is; None for names always ignored.

    `settings` maps each setting to its long flags (a flag spelt as a name is a near miss:
    `preload` for `--preload`); `hooks` are the hook names.
    """
    if name.startswith("_") or (name.isupper() and name != name.lower()):
        return None  # private names and ALL_CAPS constants
    if isinstance(value, types.ModuleType) or inspect.isclass(value):
        return None
    if callable(value):
        close = near_miss(name, {hook: () for hook in hooks})
        return Unknown(name, source, "hook", close) if close else None
    if name in OLD_NAMES:
        return Unknown(name, source, "old", OLD_NAMES[name])
    if not isinstance(value, PLAIN_DATA):
        return None  # an object made or imported for use in the file, such as a logger
    close = near_miss(name, settings)
    return Unknown(name, source, "near", close) if close else Unknown(name, source, "plain")


def _squash(word: str) -> str:
    return word.lower().replace("_", "").replace("-", "")


def near_miss(word: str, settings: Mapping[str, Iterable[str]]) -> str | None:
    """The setting `word` is probably a misspelling of, or None.

    Compared without case, `_` and `-`: the same letters as a setting or one of its long flags
    (`log_level`, `keep_alive`, `preload`), or one typo away (a letter missing, extra, wrong, or
    two swapped; two typos in names of 10 letters or more). Helper names that merely share a
    word with a setting (`use_loglevel`, `max_workers`) are further away than that.
    """
    squashed = _squash(word)
    if len(squashed) < 4:
        return None
    targets: dict[str, str] = {}
    for name, flags in settings.items():
        targets.setdefault(_squash(name), name)
        for flag in flags:
            # Short flags (--pid, --env, --name) read like ordinary helper names.
            if flag.startswith("--") and len(_squash(flag)) >= 5:
                targets.setdefault(_squash(flag), name)
    if squashed in targets:
        return targets[squashed]
    allowed = 2 if len(squashed) >= 10 else 1
    best: tuple[int, str] | None = None
    for target, name in targets.items():
        if abs(len(target) - len(squashed)) > allowed:
            continue
        distance = typo_distance(squashed, target)
        if distance <= allowed and (best is None or distance < best[0]):
            best = (distance, name)
    return best[1] if best else None


def typo_distance(a: str, b: str) -> int:
    """Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, 1):
            cost = 0 if char_a == char_b else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]
