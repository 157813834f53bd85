//! Syslog headers: RFC 3164 (BSD: `<PRI>Mmm dd hh:mm:ss host prog[pid]: msg`,
//! PRI optional as in files written by syslogd) and RFC 5424 (`<PRI>1
//! 2003-10-11T22:14:15.003Z host app procid msgid [sd] msg`).
//!
//! Hand-written rather than `syslog_loose`: header parsing runs on every
//! line of every syslog source, a fixed-position scanner does it in tens of
//! nanoseconds with no allocation, and being strict is the point here —
//! month, day, time, host and program characters are validated so that
//! arbitrary text is *not* taken for syslog (in `auto` mode such text goes to
//! the pattern parsers instead). An RFC 3164 line may also carry an RFC 3339
//! timestamp in place of `Mmm dd hh:mm:ss` (rsyslog's high-precision file
//! format).
//!
//! RFC 5424 structured data is parsed into `sd.<SD-ID>.<PARAM-NAME>` string
//! fields (escapes `\"`, `\\`, `\]` resolved); malformed structured data makes
//! the line not syslog. A tag that does not look like `program[pid]:` is
//! kept as part of the message with no program (`syslogd 1.4.1: restart.`).
//!
//! This module only reads the header. The RFC 3164 year is inferred by the
//! caller from [`LineCtx`](crate::LineCtx); this module never reads the clock.

use std::borrow::Cow;

use secmon_core::Timestamp;

use crate::timefmt::fast_datetime;

/// When the line says it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyslogTime {
    /// RFC 3164: month 1-12, day, time; no year, no zone.
    Bsd {
        month: u8,
        day: u8,
        hour: u8,
        min: u8,
        sec: u8,
        ms: u16,
    },
    /// An absolute time (RFC 3339 with an offset).
    Abs(Timestamp),
    /// RFC 5424 NILVALUE: the line carries no time.
    Nil,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    pub pri: Option<u8>,
    pub time: SyslogTime,
    pub host: Option<&'a str>,
    pub program: Option<&'a str>,
    pub pid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    /// RFC 5424 structured data, validated, without the surrounding SP.
    pub sd: Option<&'a str>,
    pub message: &'a str,
}

pub(crate) const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// secmon [`Level`](secmon_core::Level) names for syslog severities 0-7.
pub(crate) const LEVELS: [&str; 8] = [
    "FATAL", "FATAL", "FATAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG",
];

pub(crate) const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

type R<T> = Result<T, &'static str>;

#[inline]
fn two(b: &[u8], i: usize) -> Option<u8> {
    let (a, c) = (*b.get(i)?, *b.get(i + 1)?);
    if a.is_ascii_digit() && c.is_ascii_digit() {
        Some((a - b'0') * 10 + (c - b'0'))
    } else {
        None
    }
}

/// Parses the header; `Err` says why the line is not syslog.
pub(crate) fn parse(line: &str) -> R<Header<'_>> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut pri = None;
    if b.first() == Some(&b'<') {
        let mut v: u32 = 0;
        i = 1;
        while i < b.len() && b[i].is_ascii_digit() && i <= 3 {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        if i == 1 || b.get(i) != Some(&b'>') || v > 191 {
            return Err("invalid PRI");
        }
        pri = Some(v as u8);
        i += 1;
        // RFC 5424: VERSION right after PRI.
        if b.get(i) == Some(&b'1') && b.get(i + 1) == Some(&b' ') {
            return parse_5424(line, pri, i + 2);
        }
    }
    parse_3164(line, pri, i)
}

fn parse_3164(line: &str, pri: Option<u8>, start: usize) -> R<Header<'_>> {
    let b = line.as_bytes();
    let mut i = start;
    let time;
    let iso = b.get(i).is_some_and(u8::is_ascii_digit);
    if iso {
        // rsyslog's RFC 3339 variant.
        let end = memchr::memchr(b' ', &b[i..]).map_or(b.len(), |e| i + e);
        time = SyslogTime::Abs(fast_datetime(&line[i..end], true).ok_or("invalid timestamp")?);
        i = end;
    } else {
        let m = b.get(i..i + 3).ok_or("too short")?;
        let month = MONTHS.iter().position(|x| *x == m).ok_or("no month name")? as u8 + 1;
        i += 3;
        if b.get(i) != Some(&b' ') {
            return Err("invalid timestamp");
        }
        i += 1;
        // Day: "dd", " d" (space-padded, the standard) or "d".
        let day = if b.get(i) == Some(&b' ') {
            i += 1;
            let d = b
                .get(i)
                .filter(|c| c.is_ascii_digit())
                .ok_or("invalid day")?
                - b'0';
            i += 1;
            d
        } else if let Some(d) = two(b, i) {
            i += 2;
            d
        } else {
            let d = b
                .get(i)
                .filter(|c| c.is_ascii_digit())
                .ok_or("invalid day")?
                - b'0';
            i += 1;
            d
        };
        if !(1..=31).contains(&day) || b.get(i) != Some(&b' ') {
            return Err("invalid day");
        }
        i += 1;
        let hour = two(b, i).ok_or("invalid time")?;
        let min = two(b, i + 3).ok_or("invalid time")?;
        let sec = two(b, i + 4 + 2).ok_or("invalid time")?;
        if b[i + 2] != b':' || b[i + 5] != b':' || hour > 23 || min > 59 || sec > 60 {
            return Err("invalid time");
        }
        i += 8;
        let mut ms = 0u16;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let s = i;
            let mut scale = 100u16;
            while i < b.len() && b[i].is_ascii_digit() && i - s < 9 {
                ms += u16::from(b[i] - b'0') * scale;
                scale /= 10;
                i += 1;
            }
            if i == s {
                return Err("invalid time");
            }
        }
        time = SyslogTime::Bsd {
            month,
            day,
            hour,
            min,
            sec,
            ms,
        };
    }
    if b.get(i) != Some(&b' ') {
        return Err("no space after timestamp");
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    if i >= b.len() {
        return Err("missing host");
    }
    // Host, unless the token is already the tag (`sshd[1]:`, `kernel:`).
    let tok_end = memchr::memchr(b' ', &b[i..]).map_or(b.len(), |e| i + e);
    let tok = &line[i..tok_end];
    let mut host = None;
    let tok_is_tag = tok.ends_with(':') || tok.contains('[');
    if !tok_is_tag {
        if tok.len() > 255 || !tok.bytes().all(is_host_byte) {
            return Err("invalid host name");
        }
        host = Some(tok);
        i = tok_end;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    let rest = &line[i..];
    let (program, pid, message) = match tag(rest) {
        Some((prog, pid, msg_at)) => (Some(prog), pid, &rest[msg_at..]),
        None if tok_is_tag => return Err("invalid tag"),
        None => (None, None, rest),
    };
    // Application logs also start with an RFC 3339 time and a word; only a
    // PRI or a full `program[pid]:` tag makes such a line syslog.
    if iso && pri.is_none() && pid.is_none() {
        return Err("RFC 3339 time without PRI or program[pid] tag");
    }
    Ok(Header {
        pri,
        time,
        host,
        program,
        pid,
        msgid: None,
        sd: None,
        message,
    })
}

#[inline]
fn is_host_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':' | b'%')
}

#[inline]
fn is_prog_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/' | b'(' | b')' | b'@' | b'+')
}

/// `program[pid]: ` or `program: ` at the start of `s`: (program, pid,
/// offset of the message).
fn tag(s: &str) -> Option<(&str, Option<&str>, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && i < 128 && is_prog_byte(b[i]) {
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let program = &s[..i];
    let mut pid = None;
    if b.get(i) == Some(&b'[') {
        let ps = i + 1;
        let mut j = ps;
        while j < b.len() && b[j].is_ascii_digit() && j - ps < 10 {
            j += 1;
        }
        if j == ps || b.get(j) != Some(&b']') {
            return None;
        }
        pid = Some(&s[ps..j]);
        i = j + 1;
    }
    if b.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    Some((program, pid, i))
}

/// One RFC 5424 header token (PRINTUSASCII, no space) of at most `max`
/// bytes; `-` is nil.
fn token<'a>(line: &'a str, i: &mut usize, max: usize, what: &'static str) -> R<Option<&'a str>> {
    let b = line.as_bytes();
    let s = *i;
    while *i < b.len() && b[*i] != b' ' {
        if !(33..=126).contains(&b[*i]) {
            return Err(what);
        }
        *i += 1;
    }
    if *i == s || *i - s > max || b.get(*i) != Some(&b' ') {
        return Err(what);
    }
    let t = &line[s..*i];
    *i += 1;
    Ok(if t == "-" { None } else { Some(t) })
}

fn parse_5424(line: &str, pri: Option<u8>, start: usize) -> R<Header<'_>> {
    let b = line.as_bytes();
    let mut i = start;
    let ts = token(line, &mut i, 64, "invalid RFC 5424 timestamp")?;
    let time = match ts {
        None => SyslogTime::Nil,
        Some(t) => match fast_datetime(t, true) {
            Some(t) => SyslogTime::Abs(t),
            None => match t.parse::<jiff::Timestamp>() {
                Ok(t) => SyslogTime::Abs(Timestamp(t.as_millisecond())),
                Err(_) => return Err("invalid RFC 5424 timestamp"),
            },
        },
    };
    let host = token(line, &mut i, 255, "invalid RFC 5424 host name")?;
    let app = token(line, &mut i, 48, "invalid RFC 5424 app name")?;
    let procid = token(line, &mut i, 128, "invalid RFC 5424 procid")?;
    let msgid = token(line, &mut i, 32, "invalid RFC 5424 msgid")?;
    let sd_start = i;
    let sd = if b.get(i) == Some(&b'-') {
        i += 1;
        None
    } else {
        i = walk_sd(&line[i..], |_, _, _| {}).ok_or("invalid RFC 5424 structured data")? + sd_start;
        Some(&line[sd_start..i])
    };
    let message = match b.get(i) {
        None => "",
        Some(b' ') => {
            let m = &line[i + 1..];
            m.strip_prefix('\u{feff}').unwrap_or(m)
        }
        Some(_) => return Err("invalid RFC 5424 structured data"),
    };
    Ok(Header {
        pri,
        time,
        host,
        program: app,
        pid: procid,
        msgid,
        sd,
        message,
    })
}

/// Walks `[id k="v" ...][id2 ...]` from the start of `s`, calling `emit` for
/// each parameter; returns the length consumed, `None` if malformed.
pub(crate) fn walk_sd<'a>(
    s: &'a str,
    mut emit: impl FnMut(&'a str, &'a str, Cow<'a, str>),
) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let name = |i: &mut usize| -> Option<&'a str> {
        let st = *i;
        while *i < b.len()
            && (33..=126).contains(&b[*i])
            && !matches!(b[*i], b'=' | b']' | b'"' | b' ')
        {
            *i += 1;
        }
        (*i > st && *i - st <= 32).then(|| &s[st..*i])
    };
    if b.first() != Some(&b'[') {
        return None;
    }
    while b.get(i) == Some(&b'[') {
        i += 1;
        let id = name(&mut i)?;
        loop {
            match b.get(i)? {
                b']' => {
                    i += 1;
                    break;
                }
                b' ' => {
                    i += 1;
                    let pname = name(&mut i)?;
                    if b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') {
                        return None;
                    }
                    i += 2;
                    let vs = i;
                    let mut escaped = false;
                    loop {
                        match b.get(i)? {
                            b'\\' => {
                                escaped = true;
                                i += 2;
                            }
                            b'"' => break,
                            _ => i += 1,
                        }
                    }
                    let raw = s.get(vs..i)?;
                    i += 1;
                    let v = if escaped {
                        let mut out = String::with_capacity(raw.len());
                        let mut chars = raw.chars();
                        while let Some(c) = chars.next() {
                            if c == '\\' {
                                match chars.next() {
                                    Some(n @ ('"' | '\\' | ']')) => out.push(n),
                                    Some(n) => {
                                        out.push('\\');
                                        out.push(n);
                                    }
                                    None => out.push('\\'),
                                }
                            } else {
                                out.push(c);
                            }
                        }
                        Cow::Owned(out)
                    } else {
                        Cow::Borrowed(raw)
                    };
                    emit(id, pname, v);
                }
                _ => return None,
            }
        }
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loghub_openssh() {
        let h =
            parse("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186")
                .expect("ok");
        assert_eq!(h.host, Some("LabSZ"));
        assert_eq!(h.program, Some("sshd"));
        assert_eq!(h.pid, Some("24200"));
        assert_eq!(h.message, "Invalid user webmaster from 173.234.31.186");
        assert_eq!(
            h.time,
            SyslogTime::Bsd {
                month: 12,
                day: 10,
                hour: 6,
                min: 55,
                sec: 46,
                ms: 0
            }
        );
    }

    #[test]
    fn loghub_linux_forms() {
        let h = parse("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; x")
            .expect("ok");
        assert_eq!(h.program, Some("sshd(pam_unix)"));
        let h = parse("Jul  1 00:21:28 combo kernel: Linux version").expect("ok");
        assert_eq!(
            (h.program, h.pid, h.message),
            (Some("kernel"), None, "Linux version")
        );
        let h = parse("Jun 19 04:09:11 combo syslogd 1.4.1: restart.").expect("ok");
        assert_eq!((h.program, h.message), (None, "syslogd 1.4.1: restart."));
        let h = parse("Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2").expect("ok");
        assert_eq!(h.message, "-- root[2421]: ROOT LOGIN ON tty2");
    }

    #[test]
    fn rsyslog_iso_variant() {
        let h = parse("2024-01-01T00:00:00.123+01:00 web1 nginx[42]: hello").expect("ok");
        assert_eq!(
            (h.host, h.program, h.pid, h.message),
            (Some("web1"), Some("nginx"), Some("42"), "hello")
        );
        let h = parse("<13>2024-01-01T00:00:00Z web1 kernel: hi").expect("ok");
        assert_eq!(h.program, Some("kernel"));
    }

    #[test]
    fn pri_and_no_host() {
        let h = parse("<38>Feb  5 17:32:18 sshd[1]: hi").expect("ok");
        assert_eq!(
            (h.pri, h.host, h.program, h.message),
            (Some(38), None, Some("sshd"), "hi")
        );
        assert!(parse("<192>Feb  5 17:32:18 h p: x").is_err());
        assert!(parse("<3x>Feb  5 17:32:18 h p: x").is_err());
    }

    #[test]
    fn rejects_text() {
        for s in [
            "2024-01-01T00:00:00Z INFO something: blah",
            "2024-01-01T00:00:00Z A",
            "2025-11-21 10:00:00,123 - cache - ERROR - x",
            "Decided to go home",
            "Dec 32 06:55:46 h p: x",
            "Dec 10 24:55:46 h p: x",
            "Dec 10 06:55:46",
            "Dec 10 06:55:46 h$st p: x",
            "Foo 10 06:55:46 h p: x",
            "",
            "<",
            "<1",
        ] {
            assert!(parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn rfc5424_full() {
        let l = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appl\"ication"][b x="\]"] An application event"#;
        let h = parse(l).expect("ok");
        assert_eq!(h.pri, Some(165));
        assert_eq!(h.host, Some("mymachine.example.com"));
        assert_eq!(h.program, Some("evntslog"));
        assert_eq!(h.pid, None);
        assert_eq!(h.msgid, Some("ID47"));
        assert_eq!(h.message, "An application event");
        let mut got = vec![];
        walk_sd(h.sd.expect("sd"), |id, k, v| {
            got.push(format!("{id}.{k}={v}"))
        });
        assert_eq!(
            got,
            [
                "exampleSDID@32473.iut=3",
                "exampleSDID@32473.eventSource=Appl\"ication",
                "b.x=]"
            ]
        );
        let t = Timestamp::parse_rfc3339("2003-10-11T22:14:15.003Z").expect("ts");
        assert_eq!(h.time, SyslogTime::Abs(t));
    }

    #[test]
    fn rfc5424_offsets_and_nil() {
        let h =
            parse("<34>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time")
                .expect("ok");
        let t = Timestamp::parse_rfc3339("2003-08-24T12:14:15.000Z").expect("ts");
        assert_eq!(h.time, SyslogTime::Abs(t));
        assert_eq!((h.pid, h.message), (Some("8710"), "%% It's time"));
        let h = parse("<34>1 - - - - - -").expect("nil");
        assert_eq!((h.time, h.host, h.message), (SyslogTime::Nil, None, ""));
        assert!(parse("<34>1 2003-08-24T05:14:15Z h a p m [bad").is_err());
        assert!(parse("<34>1 2003-08-24T05:14:15 h a p m - x").is_err());
    }
}
