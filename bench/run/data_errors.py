"""Training samples the loader replaced because their file could not be read (data.on_error: skip): the first
few logged and kept as examples for run.json's data_errors, all of them counted. The count itself lives in
bench.run.state.RunState, so that it survives a resume."""

from __future__ import annotations

from typing import Any

from bench import dist as distenv

EXAMPLES = 20  # logged one by one and kept for run.json; past them, counted only


class ReplacedSamples:
    def __init__(self, log):
        self.log = log
        self.examples: list[str] = []  # the first EXAMPLES, then "..." once

    def note(self, batch: dict, step: int) -> int:
        """Log the batch's replaced samples (while examples are kept); return how many it had."""
        replaced = batch.get("replaced", ())
        for failures in replaced:
            msg = failures[0] + (f" (and {len(failures) - 1} more unreadable records tried)" if len(failures) > 1 else "")
            if len(self.examples) < EXAMPLES:
                self.examples.append(msg)
                self.log(f"step {step}: replaced an unreadable sample: {msg}")
            elif len(self.examples) == EXAMPLES:
                self.examples.append("...")  # said once
                self.log("more unreadable samples replaced: counted in run.json (data_errors), not logged")
        return len(replaced)

    def record(self, count: int, device) -> dict[str, Any]:
        """run.json's data_errors: every process's count summed, and this process's examples."""
        total = int(distenv.sum_across([float(count)], device)[0])
        return {"replaced_samples": total, "examples": self.examples[:EXAMPLES]}
