"""The dedup window keeps keys compactly in memory but must behave exactly like a set of them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.ingest.dedup import DedupWindow

hexes = st.text("0123456789abcdef", min_size=30, max_size=33)
keys = st.one_of(
    st.builds(lambda p, h: f"{p}:{h}", st.sampled_from(["id", "h", "x", "ID"]), hexes),
    st.text(max_size=40),
)


@given(st.lists(keys, max_size=60), st.integers(1, 20))
def test_window_matches_a_plain_model(stream: list[str], size: int) -> None:
    """Same answers as a list of the last ``size`` distinct keys, for any mix of key forms
    (an ``id:`` and an ``h:`` key with the same digest are different keys)."""
    window = DedupWindow(size)
    model: list[str] = []
    for key in stream:
        assert (key in window) == (key in model)
        window.add(key)
        if key not in model:
            model.append(key)
            del model[:-size]
    assert len(window) == len(model)
