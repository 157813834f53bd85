//! The builtin `sshd` set against real logs: every line of the loghub
//! OpenSSH and Linux samples parses, and the number of events of each name
//! equals what an independent grep over the same file finds.

use std::collections::BTreeMap;

use secmon_core::{SourceId, Timestamp, Value};
use secmon_parse::{Format, LineCtx, LineParser, ParseConfig};

fn counts(file: &str, received: &str) -> (BTreeMap<String, usize>, usize, Vec<secmon_core::Event>) {
    let path = format!(
        "{}/../../tests/fixtures/loghub/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let data = std::fs::read(&path).expect("fixture present");
    let p = LineParser::new(&ParseConfig::default(), &[], None, Format::Auto).expect("valid");
    let received = Timestamp::parse_rfc3339(received).expect("time");
    let mut ctx = LineCtx::new(SourceId(0), received);
    let mut by_name = BTreeMap::new();
    let mut lines = 0;
    let mut events = Vec::new();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        lines += 1;
        ctx.line_no = i as u64 + 1;
        let parsed = p
            .parse_line(line, &mut ctx)
            .unwrap_or_else(|e| panic!("{file}:{}: {e}: {}", i + 1, String::from_utf8_lossy(line)));
        let name = parsed.event.name().unwrap_or("<none>").to_string();
        assert_eq!(parsed.matched.is_some(), name != "<none>", "line {}", i + 1);
        *by_name.entry(name).or_insert(0) += 1;
        events.push(parsed.event);
    }
    (by_name, lines, events)
}

#[test]
fn openssh_2k_counts_match_grep() {
    // Expected counts, computed independently in tests/fixtures/loghub (repository root) with
    // f=OpenSSH_2k.log:
    //   auth_failed   grep -cE 'sshd\[[0-9]+\]: (Failed [^ ]+ for .* from [0-9.]+ port [0-9]+|message repeated [0-9]+ times: \[ ?Failed [^ ]+ for .* from [0-9.]+ port [0-9]+)' $f  → 524
    //   (of which)    grep -cE 'sshd\[[0-9]+\]: message repeated [0-9]+ times: \[ ?Failed' $f  → 2
    //   invalid_user  grep -cE 'sshd\[[0-9]+\]: [Ii]nvalid user .* from [0-9.]+' $f  → 113
    //   pam           grep -cE 'sshd\[[0-9]+\]: pam_unix\(sshd:auth\): authentication failure;.*rhost=[^ ]' $f  → 494
    //   (rhost is IP) grep -cE 'sshd\[[0-9]+\]: pam_unix\(sshd:auth\): authentication failure;.*rhost=[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+( |$)' $f  → 488
    //   accepted      grep -cE 'sshd\[[0-9]+\]: Accepted [^ ]+ for .* from ' $f  → 1
    //   max_auth      grep -cE 'sshd\[[0-9]+\]: (error: )?maximum authentication attempts exceeded' $f  → 0
    //   too_many      grep -cE 'sshd\[[0-9]+\]: Disconnecting:? .*Too many authentication failures' $f  → 3
    //   reverse       grep -cE 'sshd\[[0-9]+\]: reverse mapping checking getaddrinfo for .* failed' $f  → 85
    //   closed        grep -cE 'sshd\[[0-9]+\]: Connection (closed|reset) by ' $f  → 34
    //   disconnect    grep -cE 'sshd\[[0-9]+\]: (error: )?Received disconnect from [0-9.]+(: | port)' $f  → 468
    //   noident       grep -cE 'sshd\[[0-9]+\]: Did not receive identification string from ' $f  → 10
    //   the rest: 2000 − 1732 = 268 lines with no event name.
    let (by_name, lines, events) = counts("OpenSSH_2k.log", "2018-01-05T00:00:00Z");
    assert_eq!(lines, 2000);
    let want: BTreeMap<String, usize> = [
        ("sshd.auth_failed", 524),
        ("sshd.invalid_user", 113),
        ("sshd.pam_auth_failure", 494),
        ("sshd.accepted", 1),
        ("sshd.too_many_auth_failures", 3),
        ("sshd.reverse_mapping_failed", 85),
        ("sshd.connection_closed", 34),
        ("sshd.disconnect", 468),
        ("sshd.no_identification", 10),
        ("<none>", 268),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(by_name, want);

    let repeated: i64 = events
        .iter()
        .filter_map(|e| e.get("fields.repeat").and_then(Value::as_i64))
        .sum();
    assert_eq!(repeated, 10, "two 'message repeated 5 times' lines");
    let pam_with_ip = events
        .iter()
        .filter(|e| e.name() == Some("sshd.pam_auth_failure") && e.get("fields.ip").is_some())
        .count();
    assert_eq!(pam_with_ip, 488);
    // Every auth failure has the fields rules group on.
    for e in events
        .iter()
        .filter(|e| e.name() == Some("sshd.auth_failed"))
    {
        for f in ["fields.ip", "fields.user", "fields.port", "fields.method"] {
            assert!(e.get(f).is_some(), "{f} missing in {e:?}");
        }
        assert!(matches!(e.get("fields.port"), Some(Value::Int(_))));
    }
    // Loghub's OpenSSH sample is from December; read in January it is the
    // previous year, and the file spans into January of the next.
    assert_eq!(
        events[0].time,
        Timestamp::parse_rfc3339("2017-12-10T06:55:46Z").expect("t")
    );
    assert!(
        events.windows(2).all(|w| w[0].time <= w[1].time),
        "times are monotonic"
    );
}

#[test]
fn linux_2k_all_syslog_pam_counts_match_grep() {
    // f=Linux_2k.log:
    //   grep -cE 'sshd\(pam_unix\)\[[0-9]+\]: authentication failure;.*rhost=[^ ]' $f  → 489
    //   grep -cE 'sshd\(pam_unix\)\[[0-9]+\]: authentication failure;.*rhost=[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+( |$)' $f  → 300
    let (by_name, lines, events) = counts("Linux_2k.log", "2005-08-01T00:00:00Z");
    assert_eq!(lines, 2000);
    assert_eq!(by_name.get("sshd.pam_auth_failure"), Some(&489));
    assert_eq!(by_name.values().sum::<usize>(), 2000);
    assert_eq!(by_name.len(), 2, "{by_name:?}");
    let with_ip = events
        .iter()
        .filter(|e| e.name() == Some("sshd.pam_auth_failure") && e.get("fields.ip").is_some())
        .count();
    assert_eq!(with_ip, 300);
    assert!(events.iter().all(|e| e.get("host").is_some()));
}
