#!/usr/bin/python3
"""fail2ban's sshd jail applied to the failures fail2ban-regex found.

Input: the output of `fail2ban-regex -r -o row LOG filter.d/sshd.conf`, one
`['IP', unix_time, {...}],` line per failure the shipped sshd filter reports
(lines its filter marks NOFAIL are not printed). Each failure goes through
fail2ban's own FailManager (imported from the installed package, not
re-implemented), the way Filter.processLineAndAdd feeds it while watching a
log live: the clock is the failure's time, `attempts >= maxretry` bans (and
removes the IP from the fail list, as toBan does), and the fail list is
cleaned of entries idle for findtime at most every 5 s (performSvc).

FailManager is not an exact sliding window: when a failure arrives more than
findtime after the first one it holds, it rescales the count by the rate
(retry * findtime / elapsed) instead of dropping old failures. That, and
the filter matching both `Invalid user` and `Failed … for invalid user`
lines of one attempt, are the main reasons its banned set differs from an
exact count.

Usage: f2b_jail.py ROWS [--maxretry 5] [--findtime 600] > banned.json
Output: {"failures": N, "banned": [...], "failures_per_ip": {ip: n}}
"""

import json
import re
import sys
from collections import Counter

from fail2ban.server.failmanager import FailManager
from fail2ban.server.mytime import MyTime
from fail2ban.server.ticket import FailTicket

ROW = re.compile(r"^\['([^']+)',\s*([0-9.]+),")


def main():
    args = sys.argv[1:]
    opts = {"--maxretry": 5, "--findtime": 600}
    for k in list(opts):
        if k in args:
            i = args.index(k)
            opts[k] = int(args[i + 1])
            del args[i:i + 2]
    fm = FailManager()
    fm.setMaxRetry(opts["--maxretry"])
    fm.setMaxTime(opts["--findtime"])
    fm.maxMatches = 0
    banned = set()
    per_ip = Counter()
    failures = 0
    next_svc = 0.0
    with open(args[0], encoding="utf-8", errors="replace") as f:
        for line in f:
            m = ROW.match(line)
            if not m:
                continue
            ip, t = m.group(1), float(m.group(2))
            failures += 1
            per_ip[ip] += 1
            MyTime.setTime(t)
            attempts = fm.addFailure(FailTicket(ip, t))
            if attempts >= fm.getMaxRetry():
                try:
                    fm.toBan(ip)
                except Exception:
                    pass
                banned.add(ip)
            if t >= next_svc:
                next_svc = t + 5
                fm.cleanup(t)
    json.dump({"failures": failures, "banned": sorted(banned),
               "failures_per_ip": dict(sorted(per_ip.items()))}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
