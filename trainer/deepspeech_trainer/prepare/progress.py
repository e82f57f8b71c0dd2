"""Progress: a tqdm bar on a terminal, plain lines (every 5 %, at most every few seconds) in logs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any


class Progress:
    def __init__(
        self,
        what: str,
        total: int,
        stream: IO[str] | None = None,
        bar: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.count = 0
        self.skipped = 0
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self._start = clock()
        self._last_line = -1.0
        self._last_pct = -1
        use_bar = self.stream.isatty() if bar is None else bar
        self._bar: Any = None
        if use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=what, unit="file", file=self.stream, dynamic_ncols=True)

    def advance(self, skipped: bool = False) -> None:
        self.count += 1
        self.skipped += int(skipped)
        if self._bar is not None:
            self._bar.update(1)
            return
        pct = self.count * 100 // self.total if self.total else 100
        now = self.clock()
        # A line per 5 % keeps logs short on 100k files; the time floor keeps tiny sets from flooding.
        if self.count == self.total or (pct // 5 > self._last_pct // 5 and now - self._last_line >= 2.0):
            self._last_pct, self._last_line = pct, now
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = self.clock() - self._start
        # Items found already done cost nothing: counting them would inflate the rate.
        rate = (self.count - self.skipped) / elapsed if elapsed > 0 else 0.0
        done = f", {self.skipped} already done" if self.skipped else ""
        return f"{self.what}: {self.count}/{self.total} ({self.count * 100 // max(1, self.total)}%{done}, {rate:.1f}/s)"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
