#!/usr/bin/python3
"""Detected IPs from a CrowdSec replay: the alerts in its private SQLite
database (the same rows `cscli alerts list` shows), by scenario.

Usage: cs_alerts.py crowdsec.db > alerts.json
Output: {"scenarios": {name: [ip, ...]}, "all": [...], "alerts": N}
"""

import json
import sqlite3
import sys
from collections import defaultdict


def main():
    db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    by = defaultdict(set)
    n = 0
    for scenario, scope, value in db.execute(
            "select scenario, source_scope, source_value from alerts"):
        n += 1
        if (scope or "").lower() == "ip" and value:
            by[scenario].add(value)
    every = set().union(*by.values()) if by else set()
    json.dump({"alerts": n,
               "scenarios": {k: sorted(v) for k, v in sorted(by.items())},
               "all": sorted(every)}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
