"""Topic filters (pure): which ``[mqtt] topics`` rule, and so which payload format, a topic has."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.config.model import TopicRule

__all__ = ["FormatTable", "topic_matches"]


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 5 section 4.7: '+' one level, '#' the rest (including the parent level itself);
    a filter starting with a wildcard does not match a topic starting with '$' (4.7.2)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic.split("/")
    wanted = topic_filter.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
    return len(levels) == len(wanted)


class FormatTable:
    """The first matching rule's format (``any`` when none matches), cached per topic."""

    _LIMIT = 10_000  # topics remembered; past that each lookup walks the rules again

    def __init__(self, rules: Sequence[TopicRule]) -> None:
        self.rules = tuple(rules)
        self._cache: dict[str, str] = {}

    def format_for(self, topic: str) -> str:
        fmt = self._cache.get(topic)
        if fmt is None:
            match = (r.format for r in self.rules if topic_matches(r.filter, topic))
            fmt = next(match, "any")
            if len(self._cache) < self._LIMIT:
                self._cache[topic] = fmt
        return fmt
