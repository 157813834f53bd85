//! Checkpoint store: round trip, missing file, corrupt file named in the error.

use secmon_sources::{Checkpoint, CheckpointStore, SourceError, fingerprint};

fn cp(path: &str, inode: u64, offset: u64) -> Checkpoint {
    Checkpoint {
        path: path.into(),
        dev: 1,
        inode,
        fingerprint: fingerprint(b"hello"),
        fp_len: 5,
        offset,
        line_no: 3,
    }
}

#[test]
fn missing_file_is_empty_and_round_trip_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = CheckpointStore::default_path(dir.path());
    let mut store = CheckpointStore::load(&path).expect("load");
    assert!(store.is_empty());
    store.set(cp("/var/log/a", 10, 100));
    store.set(cp("/var/log/a", 11, 5));
    store.set(cp("/var/log/a", 10, 200)); // same identity: replaces
    store.save().expect("save");
    let back = CheckpointStore::load(&path).expect("reload");
    assert_eq!(back.len(), 2);
    assert_eq!(back.get(1, 10).map(|c| c.offset), Some(200));
    assert_eq!(back.for_path("/var/log/a".as_ref()).count(), 2);
    // No temp file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("checkpoints.json")]);
}

#[test]
fn corrupt_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("checkpoints.json");
    std::fs::write(&path, b"{\"version\":1,\"files\":[{").expect("write");
    let err = CheckpointStore::load(&path).expect_err("corrupt");
    assert!(matches!(err, SourceError::CorruptCheckpoint { .. }));
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn fingerprint_hashes_the_length_and_at_most_1k() {
    assert_ne!(fingerprint(b"ab"), fingerprint(b"ab\0"));
    let a = vec![7u8; 1024];
    let mut b = a.clone();
    b.extend_from_slice(b"more");
    assert_eq!(fingerprint(&a), fingerprint(&b));
}
