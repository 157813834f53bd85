//! Replays the committed fuzz corpus and crash regressions of the `archive`
//! target (`fuzz/corpus/archive/*`, `fuzz/regressions/archive/*`) through
//! the fuzz body: none may panic. With `ARCHIVE_WRITE_SEEDS=1` it first
//! (re)writes the hand-made seeds: a valid segment in each mode.

use std::path::{Path, PathBuf};

use secmon_archive::Storage;
use secmon_archive::internals::{fuzz_fixture, fuzz_one};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn archive_fuzz_corpus_never_panics() {
    let corpus = root().join("corpus/archive");
    if std::env::var("ARCHIVE_WRITE_SEEDS").is_ok() {
        let (st, seg) = fuzz_fixture();
        let segment = st.read(seg).expect("fixture segment");
        std::fs::create_dir_all(&corpus).expect("corpus dir");
        for (i, mode) in [0u8, 2].iter().enumerate() {
            let mut d = vec![*mode];
            d.extend_from_slice(&segment);
            std::fs::write(corpus.join(format!("seed{i:02}")), d).expect("write");
        }
    }
    let mut inputs = files(&corpus);
    inputs.extend(files(&root().join("regressions/archive")));
    assert!(!inputs.is_empty(), "no corpus under {}", corpus.display());
    for p in inputs {
        let data = std::fs::read(&p).expect("read");
        fuzz_one(&data);
    }
}
