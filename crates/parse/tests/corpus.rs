//! Replays the committed fuzz corpus and any crash regressions
//! (`fuzz/corpus/<target>/*`, `fuzz/regressions/<target>/*`) through
//! `parse_line` in every format: none may panic.

use std::path::Path;

use secmon_core::{SourceId, Timestamp};
use secmon_parse::{Format, LineCtx, LineParser, ParseConfig, PatternConfig};

const PATTERNS: &str = r#"
- name: py
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - (?P<message>.*?)(?: size (?P<size>\d+))?$'
  types: {size: int}
- name: scan
  pattern: 'SCAN duration: (?P<duration>\S+)'
  types: {duration: duration}
"#;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(targets) = std::fs::read_dir(dir) else {
        return out;
    };
    for t in targets.flatten() {
        if let Ok(entries) = std::fs::read_dir(t.path()) {
            out.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    out.sort();
    out
}

#[test]
fn fuzz_corpus_never_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = files(&root.join("corpus"));
    inputs.extend(files(&root.join("regressions")));
    assert!(!inputs.is_empty(), "no corpus under {}", root.display());
    let pats: Vec<PatternConfig> = serde_saphyr::from_str(PATTERNS).expect("yaml");
    let cfg = ParseConfig {
        keep_raw: true,
        ..Default::default()
    };
    let parsers: Vec<LineParser> = [Format::Auto, Format::Json, Format::Syslog, Format::Text]
        .into_iter()
        .map(|f| LineParser::new(&cfg, &pats, None, f).expect("valid"))
        .collect();
    for path in &inputs {
        let data = std::fs::read(path).expect("readable");
        for p in &parsers {
            for received in [0, 1_700_000_000_000, i64::MIN, i64::MAX] {
                let mut ctx = LineCtx::new(SourceId(0), Timestamp(received));
                // Whole file as one line, then line by line.
                let _ = p.parse_line(&data, &mut ctx);
                for line in data.split(|&b| b == b'\n') {
                    if let Ok(e) = p.parse_line(line, &mut ctx) {
                        let _ = e.event.to_json();
                    }
                }
            }
        }
    }
}
