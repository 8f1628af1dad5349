"""The dataset pieces without a gateway: JSON flattening (hypothesis), the optional extra, and
that the daemon never imports pyarrow."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dataset.cli import parse_time
from gateway.dataset.flatten import Kinds, cell, flatten, parse_json, uncell, unflatten
from tests.conftest import ROOT

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(".\\\ud800"), max_size=8)
)
_KEYS = st.text(alphabet=st.sampled_from("ab.\\é\x00"), max_size=4)
_DOCS = st.recursive(
    _SCALARS,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_KEYS, kids, max_size=4),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return (type(a) is type(b) and a == b) or (isinstance(b, float) and a == b)


@settings(max_examples=300, deadline=None)
@given(st.lists(_DOCS, min_size=1, max_size=5))
def test_flattened_documents_round_trip_through_their_inferred_column_types(
    docs: list[Any],
) -> None:
    kinds = Kinds()
    leaves = [flatten(doc, "json") for doc in docs]
    for one in leaves:
        kinds.add(one)
    final = kinds.final()
    for doc, one in zip(docs, leaves, strict=True):
        stored = {name: cell(final[name], value) for name, value in one.items()}
        for value in stored.values():
            if isinstance(value, str):
                value.encode("utf-8")  # every text cell is valid Arrow (UTF-8) text
        back = unflatten({n: uncell(final[n], v) for n, v in stored.items()}, "json")
        assert _same(doc, back) or _same(back, doc), (doc, back)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_arbitrary_payload_bytes_never_crash_the_json_view(data: bytes) -> None:
    document = parse_json(data)
    Kinds().add(flatten(document, "json"))


def test_hostile_payloads_are_left_to_the_payload_column() -> None:
    assert parse_json(b"[" * 100_000 + b"]" * 100_000) is None
    assert parse_json(b"1" * 5000) is None  # over Python's int-from-string limit
    deep = json.dumps(json.loads("{" + '"a":{' * 60 + "}" * 61))
    assert len(flatten(parse_json(deep.encode()), "json")) == 1


def test_times_are_utc_unless_they_say_otherwise() -> None:
    assert parse_time("2026-12-01") == 1_796_083_200 * 10**9
    assert parse_time("2026-12-01T01:00:00+01:00") == 1_796_083_200 * 10**9
    assert parse_time("2026-12-01T00:00:00.000001Z") == 1_796_083_200 * 10**9 + 1000


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )


def test_the_daemon_does_not_import_pyarrow() -> None:
    result = _python("import sys, gateway.daemon, gateway.cli; print('pyarrow' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_without_the_extra_export_says_how_to_get_it_in_one_line_and_exits_2() -> None:
    code = (
        "import sys; sys.modules['pyarrow'] = None; from gateway.cli import main; "
        "sys.exit(main(['dataset', 'export', '--config', 'x.toml', '--out', 'o']))"
    )
    result = _python(code)
    assert result.returncode == 2
    assert result.stderr == (
        "depin-gateway: the dataset commands need pyarrow: pip install 'depin-gateway[dataset]'\n"
    )


def _reading(payload: bytes, decoded: str | None = None) -> Any:
    from gateway.reading import Reading, ReceiveTime

    return Reading(1, "serial:x", "/dev/ttyX", ReceiveTime(1, 1, "b", True), payload, None, decoded)


def test_typed_columns_never_take_a_fixed_column_name() -> None:
    from gateway.dataset.parquet import FIXED_NAMES
    from gateway.dataset.rows import value_leaves

    cases = [
        _reading(b"{}", '{"pm2_5": {"value": 4, "unit": "ug/m3"}}'),
        _reading(b"x", '{"not": "a driver map"}'),
        _reading(b"x", '"\\ud800 lone surrogate"'),
        _reading(b"x", "\ud800"),
        _reading(b'{"payload": 1, "decoded": 2}'),
        _reading(b"7"),
    ]
    seen = [value_leaves(r) for r in cases]
    assert seen[0] == ({"value.pm2_5": 4}, {"value.pm2_5": "ug/m3"})
    assert seen[1] == ({"view.not": "a driver map"}, {})
    assert seen[3] == ({}, {})
    assert seen[4][0] == {"json.payload": 1, "json.decoded": 2}
    assert seen[5][0] == {"json": 7}
    for leaves, _ in seen:
        assert not set(leaves) & set(FIXED_NAMES)
