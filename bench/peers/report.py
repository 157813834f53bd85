#!/usr/bin/python3
"""Turns bench/out/peers/* into the markdown results of bench/peers/run.sh.

Usage: report.py OUT_DIR [--readme bench/README.md]
Writes OUT_DIR/results.md and, with --readme, replaces the part of the README
between `<!-- peers:begin -->` and `<!-- peers:end -->` with it.
"""

import json
import os
import statistics
import sys
from collections import Counter, defaultdict

BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"
TOOL_NAMES = {"secmon": "secmon", "secmon-t1": "secmon `--threads 1`", "secmon-json": "secmon",
              "f2b": "fail2ban", "cs": "CrowdSec"}


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def times(d):
    rows = defaultdict(dict)  # tool -> run -> (w, rss_kb, cpu)
    with open(os.path.join(d, "times.tsv")) as f:
        for line in f:
            tool, run, w, m, u, s = line.split()
            rows[tool][int(run)] = (float(w), int(m), float(u) + float(s))
    return rows


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def secmon_sets(d, name="secmon"):
    sets = defaultdict(set)
    try:
        with open(os.path.join(d, f"{name}.alerts.jsonl")) as f:
            for line in f:
                a = json.loads(line)
                ip = (a.get("group") or {}).get("fields.ip")
                key = ip or (a.get("group") or {}).get("fields.email")
                if key:
                    sets[a["rule"]].add(key)
    except OSError:
        pass
    return sets


def truth_keys(truth, name):
    """The key set of one rule in a `secmon-gen json` truth file."""
    def walk(v):
        if isinstance(v, dict):
            if name in v:
                x = v[name]
                if isinstance(x, dict):
                    for k in ("keys", "ips", "emails"):
                        if isinstance(x.get(k), list):
                            return set(x[k])
                if isinstance(x, list):
                    return set(x)
            for y in v.values():
                r = walk(y)
                if r is not None:
                    return r
        return None
    return walk(truth)


def fmt_int(n):
    return f"{n:,.0f}"


def pr(got, want):
    tp = len(got & want)
    p = tp / len(got) if got else 1.0
    r = tp / len(want) if want else 1.0
    return tp, len(got - want), len(want - got), p, r


def classify(ip, truth):
    for cls, ips in (truth or {}).get("actors", {}).items():
        if ip in ips:
            return cls
    return "background" if truth else "?"


def exact_ban(rows_times, count=5, window=600):
    """Would these failure times ban under an exact inclusive window?"""
    ts = sorted(rows_times)
    j = 0
    for i in range(len(ts)):
        while ts[i] - ts[j] > window:
            j += 1
        if i - j + 1 >= count:
            return True
    return False


def f2b_rows(d):
    by = defaultdict(list)
    path = os.path.join(d, "f2b.rows")
    if not os.path.exists(path):
        return by
    import re
    row = re.compile(r"^\['([^']+)',\s*([0-9.]+),")
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = row.match(line)
            if m:
                by[m.group(1)].append(float(m.group(2)))
    return by


def explain_f2b(ip, extra, rows, ref_max):
    """Why fail2ban's set differs from the exact count for one IP."""
    n = len(rows.get(ip, []))
    exact = exact_ban(rows.get(ip, []))
    if extra:
        if exact:
            return "several matching lines per attempt"
        return "rate estimate (FailManager)"
    if not exact:
        return "fewer matching lines than attempts"
    return "rate estimate / cleanup (FailManager)"


def main():
    out = sys.argv[1]
    readme = None
    if "--readme" in sys.argv:
        readme = sys.argv[sys.argv.index("--readme") + 1]
    names = sorted(n for n in os.listdir(out) if os.path.exists(os.path.join(out, n, "meta.json")))
    order = {"loghub": 0, "sshd": 1, "json": 2}
    names.sort(key=lambda n: (order.get(n.split("-")[0], 9), int(n.split("-")[1]) if n.split("-")[1].isdigit() else 0, n))
    md = []
    machine = open(os.path.join(out, "machine.txt")).read().strip().splitlines() if os.path.exists(os.path.join(out, "machine.txt")) else []
    started = open(os.path.join(out, "started")).read().strip() if os.path.exists(os.path.join(out, "started")) else "?"
    ls = open(os.path.join(out, "load_start")).read().strip() if os.path.exists(os.path.join(out, "load_start")) else "?"
    le = open(os.path.join(out, "load_end")).read().strip() if os.path.exists(os.path.join(out, "load_end")) else "?"
    runs = None

    speed = []
    detect = []
    diffs = []
    for n in names:
        d = os.path.join(out, n)
        meta = load(os.path.join(d, "meta.json"))
        t = times(d)
        lines = meta["lines"]
        sec_tool = "secmon-json" if "secmon-json" in t else "secmon"
        sec_runs = {r: v for r, v in t[sec_tool].items() if r >= 0}
        runs = len(sec_runs)
        for tool in [sec_tool] + [x for x in ("secmon-t1", "f2b", "cs") if x in t]:
            rr = {r: v for r, v in t[tool].items() if r >= 0}
            walls = [v[0] for v in rr.values()]
            w = med(walls)
            rss = med([v[1] for v in rr.values()]) / 1024
            cpu = med([v[2] for v in rr.values()])
            if tool in (sec_tool, "secmon-t1"):
                ratio = rss_ratio = ""
            else:
                if tool in meta.get("once", "").split():
                    # one run, not interleaved: against secmon's median
                    sm = med([v[0] for v in sec_runs.values()])
                    ratio = f"**{w / sm:,.0f}×** (1 run)" if sm > 0 else "–"
                else:
                    ratios = [rr[r][0] / sec_runs[r][0] for r in rr if r in sec_runs and sec_runs[r][0] > 0]
                    ratio = f"**{med(ratios):,.0f}×**" if ratios else "–"
                rss_ratio = f"{rss / (med([v[1] for v in sec_runs.values()]) / 1024):.1f}×"
            lps = lines / w if w > 0 else float("inf")
            speed.append(f"| {n} | {fmt_int(lines)} | {TOOL_NAMES[tool]} | {w:.2f} | {'–' if lps == float('inf') else fmt_int(lps)} "
                         f"| {rss:.0f} | {cpu:.2f} | {ratio} | {rss_ratio} | {' '.join(f'{x:.2f}' for x in walls)} |")
        if meta["kind"] == "json":
            truth = load(os.path.join(d, "truth.json"), {})
            s = secmon_sets(d)
            for rule, tk in (("failed-logins-per-ip", "failed-logins-per-ip"),
                             ("failed-logins-per-user", "failed-logins-per-user")):
                want = truth_keys(truth, tk)
                if want is None:
                    continue
                got = s.get(rule, set())
                tp, fp, fn, p, r = pr(got, want)
                detect.append(f"| {n} | {rule}: {len(want)} (generator truth) | secmon `{rule}` | {len(got)} "
                              f"| {tp} | {fp} | {fn} | {p:.3f} | {r:.3f} | – |")
            continue
        truth = load(os.path.join(d, "truth.json"))
        ref = load(os.path.join(d, "reference.json"), {})
        if truth:
            want_a = set(truth["bans"]["a"]["ips"])
            want_b = set(truth["bans"]["b"]["ips"])
            src = "generator truth"
            if ref and (set(ref["bans"]["a"]) != want_a or set(ref["bans"]["b"]) != want_b):
                src += " (**reference.py disagrees**)"
            else:
                src += " = reference.py"
        else:
            want_a, want_b = set(ref["bans"]["a"]), set(ref["bans"]["b"])
            src = "reference.py"
        ss = secmon_sets(d)
        if os.path.exists(os.path.join(d, "secmon-t1.alerts.jsonl")) and secmon_sets(d, "secmon-t1") != ss:
            diffs.append(f"- {n}: **secmon --threads 1 alerts differ from the default run**")
        f2b = load(os.path.join(d, "f2b.json"), None)
        cs = load(os.path.join(d, "cs.json"), None)
        f2b_set = set(f2b["banned"]) if f2b else None
        cands = [("a", "secmon `sshd-bruteforce`", ss.get("sshd-bruteforce", set()), want_a)]
        if f2b is not None:
            cands.append(("a", "fail2ban sshd jail", f2b_set, want_a))
        if cs is not None:
            cs_all = set(cs["all"])
            cands.append(("a", "CrowdSec (all ssh scenarios)", cs_all, want_a))
        cands.append(("b", "secmon `ssh-bf`", ss.get("ssh-bf", set()), want_b))
        if cs is not None:
            cands.append(("b", "CrowdSec `ssh-bf`", set(cs["scenarios"].get("crowdsecurity/ssh-bf", [])), want_b))
        for truth_key, label, got, want in cands:
            tp, fp, fn, p, r = pr(got, want)
            vs = "–"
            if f2b_set is not None and "fail2ban" not in label and truth_key == "a":
                vs = f"+{len(got - f2b_set)} / −{len(f2b_set - got)}"
            detect.append(f"| {n} | {truth_key}: {len(want)} ({src}) | {label} | {len(got)} | {tp} | {fp} | {fn} "
                          f"| {p:.3f} | {r:.3f} | {vs} |")
        # explanations of differences
        rows = f2b_rows(d)
        refmax = (ref or {}).get("max_in_600s", {})
        sec_a = ss.get("sshd-bruteforce", set())
        for label, got in (("fail2ban", f2b_set), ("CrowdSec", set(cs["all"]) if cs else None)):
            if got is None:
                continue
            for extra, ips in ((True, got - want_a), (False, want_a - got)):
                if not ips:
                    continue
                c = Counter()
                for ip in ips:
                    cls = classify(ip, truth)
                    why = explain_f2b(ip, extra, rows, refmax.get(ip)) if label == "fail2ban" else ""
                    c[(cls, why)] += 1
                parts = ", ".join(
                    f"{' — '.join(x for x in (cls if cls != '?' else '', why) if x) or 'unclassified'}: {k}"
                    for (cls, why), k in sorted(c.items()))
                diffs.append(f"- {n}: {label} {'bans' if extra else 'misses'} {len(ips)} "
                             f"{'not in' if extra else 'of'} the truth (a) set — {parts}"
                             + (f" ({', '.join(sorted(ips))})" if len(ips) <= 6 else ""))
        for ips, what in ((sec_a - want_a, "secmon bans outside the truth"), (want_a - sec_a, "secmon misses")):
            if ips:
                diffs.append(f"- {n}: **{what}**: {', '.join(sorted(ips))}")

    md.append(f"Measured {started} by `bench/peers/run.sh` ({runs} runs per tool and input after 1 warm-up, "
              "tools interleaved round by round; medians). Load average at start {ls}, at end {le}.".replace("{ls}", ls).replace("{le}", le))
    md.append("")
    for m in machine:
        md.append(f"- {m}")
    md.append("")
    md.append("#### Speed and memory")
    md.append("")
    md.append("Wall time of the whole command (start-up included), peak RSS and user + sys CPU, medians. "
              "`× slower` is the median over rounds of (peer wall ÷ secmon wall) in the same round; "
              "`RSS ×` is peer peak RSS ÷ secmon peak RSS.")
    md.append("")
    md.append("| input | lines | tool | wall s | lines/s | peak RSS MB | CPU s | × slower than secmon | RSS × | all wall s |")
    md.append("|---|---|---|---|---|---|---|---|---|---|")
    md.extend(speed)
    md.append("")
    md.append("#### Detected IPs")
    md.append("")
    md.append("Truth (a): ≥ 5 failed attempts within 10 min from one IP (fail2ban's sshd jail); (b): ≥ 10 within "
              "5 min. Generated logs: the generator's truth, checked against `bench/peers/reference.py`'s independent "
              "count of the log text; loghub: `reference.py` alone. `vs fail2ban`: IPs only this tool has / only "
              "fail2ban has.")
    md.append("")
    md.append("| input | truth | tool / set | detected | TP | FP | FN | precision | recall | vs fail2ban |")
    md.append("|---|---|---|---|---|---|---|---|---|---|")
    md.extend(detect)
    md.append("")
    md.append("#### Differences from truth (a), by actor class")
    md.append("")
    md.extend(diffs or ["- none"])
    text = "\n".join(md) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    if readme:
        r = open(readme).read()
        block = f"{BEGIN}\n{text}{END}"
        if BEGIN in r and END in r:
            r = r[:r.index(BEGIN)] + block + r[r.index(END) + len(END):]
        else:
            r = r.rstrip("\n") + "\n\n" + block + "\n"
        open(readme, "w").write(r)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
