#!/usr/bin/python3
"""Independent reference count of failed SSH authentication attempts.

Reads an OpenSSH auth.log (RFC 3164 syslog) and counts attempts per source IP
the fail2ban-jail way, with plain regexes and no code shared with secmon or
secmon-gen:

- `Failed <method> for [invalid user ]<user> from IP port N` counts 1;
- `message repeated N times: [ Failed …` counts N;
- a connection (same host and sshd pid) that logged `Invalid user … from IP`
  and ends without a `Failed` line counts 1, at the line that ends it
  (`Connection closed|reset by`, `Received disconnect from`,
  `Disconnecting: Too many authentication failures`, `maximum authentication
  attempts exceeded`, a new `Invalid user` line of the same pid), or at the
  last line of the log if it never ends.

An IP is banned under (count, window) when `count` attempts fall within
`window` seconds, inclusive (first and last at most `window` apart).

Usage: reference.py LOG [--year 2025] > reference.json
Output: {"attempts": N, "bans": {"a": [...], "b": [...]}, "max_in_600s": {ip: n}}
"""

import json
import re
import sys
from collections import defaultdict
from datetime import datetime, timezone

MONTHS = {m: i + 1 for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}
HEAD = re.compile(r"^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\S+) sshd\[(\d+)\]: (.*)$")
FAILED = re.compile(
    r"^(?:message repeated (\d+) times: \[ ?)?Failed \S+ for (?:invalid user )?.*? from (\S+) port \d+")
INVALID = re.compile(r"^[Ii]nvalid user .*? from (\S+)")
ENDS = re.compile(
    r"^(?:error: )?(?:Connection (?:closed|reset) by|Received disconnect from"
    r"|Disconnecting: Too many authentication failures|maximum authentication attempts exceeded)")


def attempts_of(path, year):
    attempts = defaultdict(list)  # ip -> [(t, weight)]
    open_ = {}  # (host, pid) -> ip
    last = 0
    prev_month = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = HEAD.match(line.rstrip("\n"))
            if not m:
                continue
            mon = MONTHS[m.group(1)]
            if prev_month is not None and mon < prev_month:
                year += 1  # Dec -> Jan
            prev_month = mon
            t = int(datetime(year, mon, int(m.group(2)), int(m.group(3)), int(m.group(4)),
                             int(m.group(5)), tzinfo=timezone.utc).timestamp())
            last = t
            key = (m.group(6), m.group(7))
            msg = m.group(8)
            fm = FAILED.match(msg)
            if fm:
                attempts[fm.group(2)].append((t, int(fm.group(1) or 1)))
                open_.pop(key, None)
                continue
            im = INVALID.match(msg)
            if im:
                old = open_.get(key)
                if old is not None:
                    attempts[old].append((t, 1))
                open_[key] = im.group(1)
                continue
            if ENDS.match(msg):
                ip = open_.pop(key, None)
                if ip is not None:
                    attempts[ip].append((t, 1))
    for ip in open_.values():
        attempts[ip].append((last, 1))
    return attempts


def max_in_window(lst, window):
    lst = sorted(lst)
    best, j, s = 0, 0, 0
    for i in range(len(lst)):
        s += lst[i][1]
        while lst[i][0] - lst[j][0] > window:
            s -= lst[j][1]
            j += 1
        best = max(best, s)
    return best


def main():
    args = sys.argv[1:]
    year = 2025
    if "--year" in args:
        i = args.index("--year")
        year = int(args[i + 1])
        del args[i:i + 2]
    att = attempts_of(args[0], year)
    out = {
        "attempts": sum(w for lst in att.values() for _, w in lst),
        "bans": {
            "a": sorted(ip for ip, lst in att.items() if max_in_window(lst, 600) >= 5),
            "b": sorted(ip for ip, lst in att.items() if max_in_window(lst, 300) >= 10),
        },
        "max_in_600s": {ip: max_in_window(lst, 600) for ip, lst in sorted(att.items())},
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
