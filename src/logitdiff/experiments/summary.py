"""What one run did, counted by the stages and printed at the end."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(stderr=True)


@dataclass
class RunSummary:
    computed: int = 0
    reused: int = 0
    failed: list[str] = field(default_factory=list)
    graded: int = 0
    grades_reused: int = 0
    unlabelled: int = 0  # graded lists failed because the judge left most labels UNKNOWN
    agent_runs: int = 0
    agent_reused: int = 0
    llm_usage: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    report_folders: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def print(self) -> None:
        table = Table(title="logitdiff run summary", show_header=False)
        table.add_row("cells computed", str(self.computed))
        table.add_row("cells reused", str(self.reused))
        table.add_row("cells graded / reused", f"{self.graded} / {self.grades_reused}")
        table.add_row("agent runs done / reused", f"{self.agent_runs} / {self.agent_reused}")
        table.add_row("lists the judge could not label", str(self.unlabelled))
        table.add_row("failed", str(len(self.failed)))
        table.add_row("time", f"{time.perf_counter() - self.started:.1f} s")
        for line in self.llm_usage:
            table.add_row("LLM", escape(line))
        console.print(table)
        for line in self.failed:
            console.print(f"[red]failed[/] {escape(line)}")  # lines hold '[pass]', '[relevance …]': not markup
        if self.missing:
            console.print(f"[yellow]{len(self.missing)} results missing from the plots[/] (see missing.json), e.g. {escape(self.missing[0])}")
        for folder in self.report_folders:
            console.print(f"plots and summaries: [bold]{escape(folder)}[/]")
