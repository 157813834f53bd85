//! Line splitting: exact boundaries, CRLF, final lines, over-long lines with
//! bounded memory, tail-mode holding, batches against a naive reference.

use std::io::{self, Read};

use proptest::prelude::*;
use secmon_sources::{Item, LineBatch, LineReader};

fn collect<R: Read>(mut r: LineReader<R>) -> Vec<(u64, Result<Vec<u8>, u64>, u64)> {
    let mut out = Vec::new();
    while let Some(item) = r.next_item().expect("read") {
        out.push(match item {
            Item::Line {
                line_no,
                bytes,
                end_offset,
            } => (line_no, Ok(bytes.to_vec()), end_offset),
            Item::TooLong {
                line_no,
                len,
                end_offset,
            } => (line_no, Err(len), end_offset),
        });
    }
    out
}

#[test]
fn crlf_empty_lines_and_missing_final_newline() {
    let data = b"a\r\nbb\n\n\r\nlast";
    let got = collect(LineReader::new(&data[..]));
    assert_eq!(
        got,
        vec![
            (1, Ok(b"a".to_vec()), 3),
            (2, Ok(b"bb".to_vec()), 6),
            (3, Ok(b"".to_vec()), 7),
            (4, Ok(b"".to_vec()), 9),
            (5, Ok(b"last".to_vec()), 13),
        ]
    );
}

#[test]
fn a_lone_cr_inside_a_line_is_kept() {
    let got = collect(LineReader::new(&b"a\rb\n"[..]));
    assert_eq!(got, vec![(1, Ok(b"a\rb".to_vec()), 4)]);
}

/// Produces `prefix`, then `n` bytes of 'x', then `suffix`, without holding
/// the big part in memory; records the largest read buffer it was handed.
struct Generated {
    prefix: Vec<u8>,
    big: u64,
    suffix: Vec<u8>,
    pos: u64,
    max_request: usize,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.max_request = self.max_request.max(buf.len());
        let p = self.prefix.len() as u64;
        let total = p + self.big + self.suffix.len() as u64;
        let mut n = 0;
        while n < buf.len() && self.pos < total {
            if self.pos >= p && self.pos < p + self.big {
                // Bulk-fill the big run: keeps the test fast in debug builds.
                let k = (buf.len() - n).min((p + self.big - self.pos) as usize);
                buf[n..n + k].fill(b'x');
                n += k;
                self.pos += k as u64;
                continue;
            }
            buf[n] = if self.pos < p {
                self.prefix[self.pos as usize]
            } else if self.pos < p + self.big {
                b'x'
            } else {
                self.suffix[(self.pos - p - self.big) as usize]
            };
            n += 1;
            self.pos += 1;
        }
        Ok(n)
    }
}

#[test]
fn five_megabyte_line_with_1k_limit_is_one_too_long_and_memory_stays_bounded() {
    let big = 5 * 1024 * 1024;
    let mut r = LineReader::new(Generated {
        prefix: b"one\ntwo\n".to_vec(),
        big,
        suffix: b"\nafter\n".to_vec(),
        pos: 0,
        max_request: 0,
    })
    .max_line(1024);
    let mut got = Vec::new();
    while let Some(item) = r.next_item().expect("read") {
        got.push(format!("{item:?}"));
        assert!(r.buffer_capacity() <= 256 * 1024 + 1);
    }
    assert_eq!(got.len(), 4);
    assert!(got[2].contains("TooLong { line_no: 3, len: 5242880, end_offset: 5242889 }"));
    assert!(got[3].contains("line_no: 4"));
    assert!(r.get_ref().max_request <= 256 * 1024);
    assert!(r.buffer_capacity() <= 256 * 1024 + 1);
}

#[test]
fn exactly_max_line_is_a_line_one_more_is_too_long() {
    let data = b"abcd\nabcde\nab\n";
    let got = collect(LineReader::new(&data[..]).max_line(4));
    assert_eq!(
        got,
        vec![
            (1, Ok(b"abcd".to_vec()), 5),
            (2, Err(5), 11),
            (3, Ok(b"ab".to_vec()), 14)
        ]
    );
}

#[test]
fn buffer_grows_for_a_long_line_within_the_limit() {
    let mut data = vec![b'q'; 700_000];
    data.extend_from_slice(b"\nshort\n");
    let got = collect(LineReader::new(&data[..]).max_line(1 << 20));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1.as_ref().map(Vec::len), Ok(700_000));
    assert_eq!(got[1].1, Ok(b"short".to_vec()));
}

#[test]
fn too_long_final_line_without_newline_at_eof() {
    let data = vec![b'z'; 300_000];
    let got = collect(LineReader::new(&data[..]).max_line(10));
    assert_eq!(got, vec![(1, Err(300_000), 300_000)]);
}

/// A reader whose content can grow between reads, like a file being written.
#[derive(Default)]
struct Growing {
    data: Vec<u8>,
    pos: usize,
}

impl Read for Growing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn tail_mode_holds_a_partial_line_until_its_newline() {
    let mut r = LineReader::new(Growing::default()).tail_mode(true);
    r.get_mut().data.extend_from_slice(b"first\nsec");
    assert_eq!(
        r.next_item().expect("read"),
        Some(Item::Line {
            line_no: 1,
            bytes: b"first",
            end_offset: 6
        })
    );
    assert_eq!(r.next_item().expect("read"), None);
    assert_eq!(r.offset(), 6);
    assert_eq!(r.pending_len(), 3);
    r.get_mut().data.extend_from_slice(b"ond\r\nthi");
    assert_eq!(
        r.next_item().expect("read"),
        Some(Item::Line {
            line_no: 2,
            bytes: b"second",
            end_offset: 14
        })
    );
    assert_eq!(r.next_item().expect("read"), None);
    // Letting the file go: the held partial line is flushed.
    assert_eq!(
        r.finish(),
        Some(Item::Line {
            line_no: 3,
            bytes: b"thi",
            end_offset: 17
        })
    );
    assert_eq!(r.finish(), None);
}

#[test]
fn starting_at_continues_offsets_and_numbers() {
    let got = collect(LineReader::new(&b"x\ny\n"[..]).starting_at(100, 7));
    assert_eq!(
        got,
        vec![(8, Ok(b"x".to_vec()), 102), (9, Ok(b"y".to_vec()), 104)]
    );
}

/// Splits like `str::split('\n')` with CR stripping and the limit applied.
fn reference(data: &[u8], max: usize) -> Vec<(u64, Result<Vec<u8>, u64>, u64)> {
    let mut out = Vec::new();
    let mut off = 0u64;
    let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let last = parts.pop().unwrap_or_default();
    let mut n = 0;
    let mut emit = |p: &[u8], nl: u64, out: &mut Vec<_>| {
        n += 1;
        off += p.len() as u64 + nl;
        if p.len() > max {
            out.push((n, Err(p.len() as u64), off));
        } else {
            let p = p.strip_suffix(b"\r").unwrap_or(p);
            out.push((n, Ok(p.to_vec()), off));
        }
    };
    for p in parts {
        emit(p, 1, &mut out);
    }
    if !last.is_empty() {
        emit(last, 0, &mut out);
    }
    out
}

/// Hands out at most `chunk` bytes per read, to exercise buffer refills.
struct Chunky<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Random bytes drawn from `alphabet` (cheap to generate, unlike `prop_oneof`).
fn bytes_of(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(0..alphabet.len(), 0..max)
        .prop_map(move |v| v.into_iter().map(|i| alphabet[i]).collect())
}

proptest! {
    #[test]
    fn matches_reference(
        data in bytes_of(b"\n\rab", 2000),
        max in 1usize..50,
        chunk in 1usize..300,
    ) {
        let got = collect(LineReader::new(Chunky { data: &data, chunk }).max_line(max));
        prop_assert_eq!(got, reference(&data, max));
    }

    #[test]
    fn batches_match_items(
        data in bytes_of(b"\nab", 3000),
        target in 1usize..200,
    ) {
        let want = collect(LineReader::new(&data[..]).max_line(40));
        let mut r = LineReader::new(&data[..]).max_line(40);
        let mut batch = LineBatch::new(target);
        let mut got = Vec::new();
        while r.next_batch(&mut batch).expect("read") {
            for l in batch.iter() {
                got.push((l.line_no, l.too_long.map_or(Ok(l.bytes.to_vec()), Err), l.end_offset));
            }
        }
        prop_assert_eq!(got, want);
    }
}

/// A batch's texts: every line when the batch is valid UTF-8, except a
/// line cut inside a character (its neighbours' bytes make the batch valid
/// as a whole, not the line) and over-long ones; nothing when invalid.
#[test]
fn batch_texts_validated_once() {
    let mut b = LineBatch::new(1024);
    b.push(1, "plain".as_bytes(), 6, None);
    b.push(2, "é ü".as_bytes(), 12, None);
    b.push(3, &[], 20, Some(5000));
    b.push(4, &"é".as_bytes()[..1], 22, None);
    b.push(5, &"é".as_bytes()[1..], 24, None);
    let texts: Vec<Option<&str>> = b.texts().expect("valid as a whole").collect();
    assert_eq!(texts, [Some("plain"), Some("é ü"), None, None, None]);
    let mut bad = LineBatch::new(1024);
    bad.push(1, b"ok", 3, None);
    bad.push(2, &[0xff], 5, None);
    assert!(bad.texts().is_none());
}
