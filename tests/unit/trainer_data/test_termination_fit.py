"""fit_message keeps the first problem of any preflight report, within the 4096-byte limit."""

from __future__ import annotations

import json

import pytest
from deepspeech_trainer.report import MAX_MESSAGE_BYTES, fit_message
from hypothesis import given, settings
from hypothesis import strategies as st

texts = st.text(max_size=40) | st.text(max_size=3000) | st.text(alphabet='é\x00"\\𝄞', max_size=2000)
problem = st.fixed_dictionaries(
    {"file": texts, "line": st.integers(0, 10**12), "code": texts, "message": texts}
)
payload = st.fixed_dictionaries(
    {
        "kind": st.just("preflight"),
        "ok": st.booleans(),
        "rows": st.integers(0, 10**9),
        "problems": st.lists(problem, min_size=1, max_size=60),
        "alphabetSize": st.integers(0, 300),
    },
    optional={"error": texts, "problemCount": st.integers(0, 10**9)},
)


@settings(max_examples=300, deadline=None)
@given(payload)
def test_first_problem_always_survives_within_the_limit(obj: dict) -> None:
    data = fit_message(obj)
    assert len(data) <= MAX_MESSAGE_BYTES
    decoded = json.loads(data)
    assert decoded["kind"] == "preflight"
    assert decoded["problems"], "every problem was dropped"
    first, kept = obj["problems"][0], decoded["problems"][0]
    assert kept["line"] == first["line"]
    for key in ("file", "code", "message"):
        assert first[key].startswith(kept[key].removesuffix("…"))


@pytest.mark.parametrize("message_length", range(20, 120))
def test_many_short_problems_keep_the_longest_list_that_fits(message_length: int) -> None:
    # Some lengths leave the chosen list a few bytes short of 4 096 before the truncation marker is
    # added (4 099 after): the marker must be counted when choosing, or every problem is dropped.
    problems = [
        {"file": "s3://b/t.csv", "line": i, "code": "csv_columns", "message": "x" * message_length}
        for i in range(200)
    ]
    data = fit_message({"kind": "preflight", "ok": False, "rows": 0, "problems": problems})
    decoded = json.loads(data)
    assert len(data) <= MAX_MESSAGE_BYTES and len(decoded["problems"]) > 10
    assert decoded["problemsTruncated"] is True and decoded["problemCount"] == 200


def test_one_oversized_problem_is_kept_truncated() -> None:
    header = ",".join(f"c{i}" for i in range(10**6))
    obj = {
        "kind": "preflight",
        "ok": False,
        "rows": 0,
        "problemCount": 1,
        "problems": [
            {"file": "s3://b/t.csv", "line": 1, "code": "csv_header", "message": f"header {header!r}"}
        ],
        "alphabetSize": 0,
    }
    decoded = json.loads(fit_message(obj))
    assert [p["code"] for p in decoded["problems"]] == ["csv_header"]
    assert decoded["problems"][0]["message"].startswith("header 'c0,c1,")
