"""Kill rate of the mutants whose names match the patterns given as arguments (run.sh calls this).

Reads mutmut's result files in the current directory's ``mutants/`` and prints one line per
surviving mutant and the totals. "Killed" counts test failures and timeouts, as mutmut does, and
runs pytest reports as interrupted: the estimators turn an epoch that ends without its bound into
a ``KeyboardInterrupt`` (``_check_last_epoch_complete``), so a mutant that renames the ``bound``
column stops the test run itself — the tests did not pass.
"""

import fnmatch
import json
import sys
from pathlib import Path

from mutmut.stats import status_by_exit_code

KILLED = ("killed", "timeout", "check was interrupted by user")
patterns = sys.argv[1:]
statuses = {}
for meta in sorted(Path("mutants").rglob("*.py.meta")):
    for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
        if any(fnmatch.fnmatch(name, p) for p in patterns):
            statuses[name] = status_by_exit_code[code]

counts = {}
for status in statuses.values():
    counts[status] = counts.get(status, 0) + 1
for name, status in sorted(statuses.items()):
    if status not in KILLED:
        print(f"{status:>12}  {name}")
killed = sum(counts.get(status, 0) for status in KILLED)
tested = sum(n for s, n in counts.items() if s not in ("not checked", "skipped"))
print()
print("counts:", ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
print(f"kill rate: {killed}/{tested} = {killed / max(tested, 1):.1%}")
