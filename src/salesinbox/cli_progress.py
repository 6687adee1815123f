"""A rich progress bar for `salesinbox sync --once`: one line per folder."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class SyncProgress:
    def __init__(self) -> None:
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), transient=False)
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> SyncProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._progress.stop()

    def for_account(self, account: str):
        def update(folder: str, done: int, total: int) -> None:
            key = f"{account}/{folder}"
            if key not in self._tasks:
                self._tasks[key] = self._progress.add_task(folder, total=total)
            self._progress.update(self._tasks[key], completed=done, total=total)

        return update
