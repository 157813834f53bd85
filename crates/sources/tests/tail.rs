//! The tailer on real files in a temporary directory: partial lines,
//! rotations, truncation, restarts with checkpoints, globs.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use secmon_sources::{CheckpointStore, FileTailer, StartAt, TailLine, TailOptions};

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

/// One poll; the lines as strings.
fn poll(t: &mut FileTailer) -> Vec<String> {
    let mut out = Vec::new();
    let stats = t.poll(&mut out).expect("poll");
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    strings(&out)
}

fn strings(lines: &[TailLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
        .collect()
}

/// Polls a few times (rotated handles close after quiet polls) and acks all.
fn settle(t: &mut FileTailer) -> Vec<String> {
    let mut all = Vec::new();
    for _ in 0..4 {
        let mut out = Vec::new();
        let stats = t.poll(&mut out).expect("poll");
        assert!(stats.errors.is_empty(), "{:?}", stats.errors);
        for l in &out {
            t.ack(l.file, l.end_offset, l.line_no);
        }
        all.extend(strings(&out));
    }
    all
}

fn tailer(pattern: &Path, store: Option<CheckpointStore>) -> FileTailer {
    FileTailer::new(
        vec![pattern.to_string_lossy().into_owned()],
        TailOptions::default(),
        store,
    )
    .expect("tailer")
}

fn lines(range: std::ops::Range<u32>, tag: &str) -> (String, Vec<String>) {
    let v: Vec<String> = range.map(|i| format!("{tag}{i}")).collect();
    (v.iter().map(|l| format!("{l}\n")).collect(), v)
}

#[test]
fn partial_line_is_held_until_its_newline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    append(&log, "one\ntw");
    let mut t = tailer(&log, None);
    assert_eq!(poll(&mut t), vec!["one"]);
    assert!(poll(&mut t).is_empty());
    append(&log, "o\r\nthree\n");
    let mut out = Vec::new();
    t.poll(&mut out).expect("poll");
    assert_eq!(strings(&out), vec!["two", "three"]);
    assert_eq!(out[1].line_no, 3);
    assert_eq!(out[1].end_offset, 15);
}

#[test]
fn rename_rotation_yields_every_line_once_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    let (a, mut want) = lines(0..10, "a");
    append(&log, &a);
    let mut t = tailer(&log, None);
    let mut got = poll(&mut t);
    let (b, wb) = lines(10..20, "a");
    append(&log, &b);
    want.extend(wb);
    fs::rename(&log, dir.path().join("app.log.1")).expect("rename");
    let (c, wc) = lines(0..5, "b");
    append(&log, &c);
    want.extend(wc);
    got.extend(settle(&mut t));
    assert_eq!(got, want);
}

#[test]
fn copytruncate_restarts_at_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    append(&log, "old line one\nold line two\n");
    let mut t = tailer(&log, None);
    assert_eq!(poll(&mut t).len(), 2);
    fs::copy(&log, dir.path().join("app.log.1")).expect("copy");
    OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    append(&log, "new\n");
    let mut out = Vec::new();
    let stats = t.poll(&mut out).expect("poll");
    assert_eq!(stats.truncations, 1);
    assert_eq!(strings(&out), vec!["new"]);
    assert_eq!(out[0].line_no, 1);
    assert_eq!(out[0].end_offset, 4);
}

#[test]
fn truncate_and_rewrite_past_offset_is_noticed_by_fingerprint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    append(&log, "aaaa\n");
    let mut t = tailer(&log, None);
    assert_eq!(poll(&mut t), vec!["aaaa"]);
    fs::write(&log, "bbbbbbbbbb\ncc\n").expect("rewrite");
    assert_eq!(poll(&mut t), vec!["bbbbbbbbbb", "cc"]);
}

#[test]
fn restart_resumes_after_acked_lines_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    let cps = dir.path().join("checkpoints.json");
    append(&log, "1\n2\n3\n");
    {
        let mut t = tailer(&log, Some(CheckpointStore::load(&cps).expect("load")));
        let mut out = Vec::new();
        t.poll(&mut out).expect("poll");
        assert_eq!(out.len(), 3);
        // Only the first two were processed before the "crash".
        t.ack(out[1].file, out[1].end_offset, out[1].line_no);
        t.checkpoint().expect("checkpoint");
    }
    append(&log, "4\n");
    let mut t = tailer(&log, Some(CheckpointStore::load(&cps).expect("load")));
    let mut out = Vec::new();
    t.poll(&mut out).expect("poll");
    assert_eq!(strings(&out), vec!["3", "4"]);
    assert_eq!(out[0].line_no, 3);
}

#[test]
fn restart_across_a_rotation_while_down_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    let cps = dir.path().join("checkpoints.json");
    // Longer than 1 KiB so the fingerprint window is full.
    let (a, _) = lines(0..300, "first-");
    append(&log, &a);
    {
        let mut t = tailer(&log, Some(CheckpointStore::load(&cps).expect("load")));
        assert_eq!(settle(&mut t).len(), 300);
        t.checkpoint().expect("checkpoint");
    }
    let (b, mut want) = lines(300..310, "first-");
    append(&log, &b);
    fs::rename(&log, dir.path().join("app.log-20240101")).expect("rename");
    let (c, wc) = lines(0..3, "second-");
    append(&log, &c);
    want.extend(wc);
    let mut t = tailer(&log, Some(CheckpointStore::load(&cps).expect("load")));
    assert_eq!(settle(&mut t), want);
    // And a second restart after acking everything reads nothing.
    t.checkpoint().expect("checkpoint");
    drop(t);
    let mut t = tailer(&log, Some(CheckpointStore::load(&cps).expect("load")));
    assert!(settle(&mut t).is_empty());
}

#[test]
fn restart_across_a_short_file_rotation_while_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    let cps = dir.path().join("checkpoints.json");
    append(&log, "a\n");
    {
        let mut t = tailer(&log, Some(CheckpointStore::load(&cps).expect("load")));
        assert_eq!(settle(&mut t), vec!["a"]);
        t.checkpoint().expect("checkpoint");
    }
    append(&log, "b\n");
    fs::rename(&log, dir.path().join("app.log.1")).expect("rename");
    append(&log, "c\n");
    let mut t = tailer(&log, Some(CheckpointStore::load(&cps).expect("load")));
    assert_eq!(settle(&mut t), vec!["b", "c"]);
}

#[test]
fn start_at_end_skips_existing_content_of_unknown_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    append(&log, "old\n");
    let opts = TailOptions {
        start_at: StartAt::End,
        ..TailOptions::default()
    };
    let mut t = FileTailer::new(vec![log.to_string_lossy().into_owned()], opts, None).expect("t");
    assert!(poll(&mut t).is_empty());
    append(&log, "new\n");
    assert_eq!(poll(&mut t), vec!["new"]);
}

#[test]
fn glob_picks_up_a_file_created_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    append(&dir.path().join("a.log"), "a1\n");
    let mut t = tailer(&dir.path().join("*.log"), None);
    assert_eq!(poll(&mut t), vec!["a1"]);
    append(&dir.path().join("b.log"), "b1\n");
    append(&dir.path().join("b.txt"), "ignored\n");
    assert_eq!(poll(&mut t), vec!["b1"]);
    assert_eq!(t.paths().len(), 2);
}

#[test]
fn deleted_file_is_drained_then_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    append(&log, "x\n");
    let mut t = tailer(&log, None);
    assert_eq!(poll(&mut t), vec!["x"]);
    append(&log, "y\n");
    fs::remove_file(&log).expect("rm");
    assert_eq!(settle(&mut t), vec!["y"]);
    assert!(t.paths().is_empty());
}

#[test]
fn corrupt_checkpoint_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cps = dir.path().join("checkpoints.json");
    fs::write(&cps, "not json").expect("write");
    let err = CheckpointStore::load(&cps).expect_err("corrupt");
    assert!(err.to_string().contains("checkpoints.json"), "{err}");
}

#[test]
fn one_hot_file_cannot_starve_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hot = dir.path().join("hot.log");
    let line = "x".repeat(99) + "\n";
    append(&hot, &line.repeat(1000));
    append(&dir.path().join("cold.log"), "cold\n");
    let opts = TailOptions {
        max_bytes_per_poll: 10_000,
        ..TailOptions::default()
    };
    let pattern = dir.path().join("*.log").to_string_lossy().into_owned();
    let mut t = FileTailer::new(vec![pattern], opts, None).expect("t");
    let mut out = Vec::new();
    let stats = t.poll(&mut out).expect("poll");
    assert!(stats.more_pending);
    assert!(strings(&out).contains(&"cold".to_string()));
    assert!(out.len() < 200);
}

#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Partial,
    Rotate,
    CopyTruncate,
    Poll,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..20).prop_map(Op::Append),
        1 => Just(Op::Partial),
        1 => Just(Op::Rotate),
        1 => Just(Op::CopyTruncate),
        3 => Just(Op::Poll),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Appends, renames, copytruncates and restarts (with full acks) against the model
    /// "every complete line written, exactly once, in order".
    #[test]
    fn appends_rotations_restarts_yield_every_line_once(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("app.log");
        let cps = dir.path().join("checkpoints.json");
        let mut want = Vec::new();
        let mut got = Vec::new();
        let mut n = 0u32;
        let mut rotations = 0;
        let mut rotated_since_poll = false;
        // A partial line is completed by the next append to the same file.
        let mut partial: Option<String> = None;
        let new = |cps: &Path| tailer(&log, Some(CheckpointStore::load(cps).expect("load")));
        append(&log, "");
        let mut t = new(&cps);
        for op in ops {
            match op {
                Op::Append(k) => {
                    let mut text = String::new();
                    for _ in 0..k {
                        let l = format!("line-{n}-{}", "p".repeat((n % 13) as usize * 20));
                        n += 1;
                        let full = match partial.take() {
                            Some(p) => { text.push_str(&l); format!("{p}{l}") }
                            None => { text.push_str(&l); l }
                        };
                        text.push('\n');
                        want.push(full);
                    }
                    append(&log, &text);
                }
                Op::Partial => if partial.is_none() {
                    let p = format!("part-{n}-");
                    n += 1;
                    append(&log, &p);
                    partial = Some(p);
                },
                Op::Rotate => {
                    // Two renames between polls hide the middle file from any
                    // poller (tail -F too): the model allows one per poll.
                    if rotated_since_poll {
                        got.extend(settle(&mut t));
                    }
                    rotated_since_poll = true;
                    // A partial line left in the rotated file is flushed when
                    // the old file is let go.
                    if let Some(p) = partial.take() { want.push(p); }
                    rotations += 1;
                    fs::rename(&log, dir.path().join(format!("app.log.{rotations}"))).expect("rename");
                    append(&log, "");
                }
                Op::CopyTruncate => {
                    // Lines written between the last read and the copy exist
                    // only in the copy (the race copytruncate is known for),
                    // and so does a partial line: the model reads first.
                    if partial.is_none() {
                        got.extend(settle(&mut t));
                        rotated_since_poll = false;
                        rotations += 1;
                        fs::copy(&log, dir.path().join(format!("app.log.{rotations}"))).expect("copy");
                        OpenOptions::new().write(true).open(&log).expect("open").set_len(0).expect("truncate");
                    }
                }
                Op::Poll => {
                    got.extend(settle(&mut t));
                    rotated_since_poll = false;
                }
                Op::Restart => {
                    got.extend(settle(&mut t));
                    rotated_since_poll = false;
                    t.checkpoint().expect("checkpoint");
                    drop(t);
                    t = new(&cps);
                }
            }
        }
        if let Some(p) = partial.take() { append(&log, "\n"); want.push(p); }
        got.extend(settle(&mut t));
        prop_assert_eq!(got, want);
    }
}

#[test]
fn wait_returns_early_on_a_filesystem_event_when_watching() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    append(&log, "a\n");
    let opts = TailOptions {
        watch: true,
        ..TailOptions::default()
    };
    let mut t = FileTailer::new(vec![log.to_string_lossy().into_owned()], opts, None).expect("t");
    assert_eq!(poll(&mut t), vec!["a"]);
    append(&log, "b\n");
    let started = std::time::Instant::now();
    t.wait(std::time::Duration::from_secs(10));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(poll(&mut t), vec!["b"]);
}

#[test]
fn too_long_lines_are_reported_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    append(&log, &format!("ok\n{}\nok2\n", "y".repeat(5000)));
    let opts = TailOptions {
        max_line: 1024,
        ..TailOptions::default()
    };
    let mut t = FileTailer::new(vec![log.to_string_lossy().into_owned()], opts, None).expect("t");
    let mut out = Vec::new();
    let stats = t.poll(&mut out).expect("poll");
    assert_eq!(stats.too_long, 1);
    assert_eq!(out[1].too_long, Some(5000));
    assert_eq!(out[1].line_no, 2);
    assert_eq!(out[2].bytes, b"ok2");
}
