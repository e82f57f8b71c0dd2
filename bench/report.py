"""`python -m bench.report`: the latest figures (bench/results/latest.json) as a Markdown table."""

from __future__ import annotations

import json

from bench.common import RESULTS


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table() -> str:
    records = json.loads((RESULTS / "latest.json").read_text())
    lines = [
        "| Benchmark | Value | Peer | Peer value | Ratio (× better than peer) | Target | Met | Date |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        met = {True: "yes", False: "**no**", None: "–"}[r["met"]]
        lines.append(
            f"| `{r['name']}` | {_fmt(r['value'])} {r['unit']} | {r['peer'] or '–'} | "
            f"{_fmt(r['peer_value'])} | {_fmt(r['ratio'])} | {r['target'] or '–'} | {met} | {r['date']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
