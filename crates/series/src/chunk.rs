//! Fixed-size blocks of rows: the unit of allocation, compression, retention
//! and persistence of both tiers.
//!
//! A chunk covers `rows` consecutive slots (10 s samples) or buckets (5 min
//! rollups) starting at an aligned index, with `cols` `f64` columns. While time
//! is inside it, it is *open*: a plain vector written in place. Once time has
//! passed its end it is *sealed*: XOR-compressed ([`crate::codec`]), and only
//! decoded again to be read. Absent rows are NaN, so a chunk has no per-row
//! timestamps and no presence bitmap. A chunk is only allocated when a row in
//! it is written: a series that is silent for hours costs nothing for those
//! hours. Chunks do not know their tier's meaning; the series does.

use std::borrow::Cow;

use crate::codec::{BitReader, BitWriter, decode, encode};

/// Shape of a tier's chunks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub rows: usize,
    pub cols: usize,
}

#[derive(Clone, Debug)]
enum Data {
    /// Column-major: value of (row, col) at `col * rows + row`.
    Open(Vec<f64>),
    Sealed(Box<[u8]>),
}

#[derive(Clone, Debug)]
pub(crate) struct Chunk {
    /// Index (slot or bucket number) of row 0; a multiple of `rows`.
    pub start: i64,
    data: Data,
}

impl Chunk {
    pub fn new(start: i64, l: Layout) -> Self {
        Chunk {
            start,
            data: Data::Open(vec![f64::NAN; l.rows * l.cols]),
        }
    }

    /// Index one past the last row.
    pub fn end(&self, l: Layout) -> i64 {
        self.start + l.rows as i64
    }

    pub fn is_open(&self) -> bool {
        matches!(self.data, Data::Open(_))
    }

    /// Writes one row; reopens (decodes) a sealed chunk, which only happens
    /// for the current chunk after a snapshot was loaded.
    pub fn set_row(&mut self, l: Layout, row: usize, values: &[f64]) {
        if let Data::Sealed(_) = self.data {
            self.data = Data::Open(self.values(l).into_owned());
        }
        if let Data::Open(v) = &mut self.data {
            for (c, &x) in values.iter().enumerate().take(l.cols) {
                if let Some(cell) = v.get_mut(c * l.rows + row) {
                    *cell = x;
                }
            }
        }
    }

    pub fn seal(&mut self) {
        if let Data::Open(v) = &self.data {
            self.data = Data::Sealed(encode_values(v).into_boxed_slice());
        }
    }

    /// All values, column-major.
    pub fn values(&self, l: Layout) -> Cow<'_, [f64]> {
        match &self.data {
            Data::Open(v) => Cow::Borrowed(v),
            // Sealed chunks were encoded by us or validated at load, so this
            // cannot fail; if it ever did, the rows read as gaps, not a panic.
            Data::Sealed(b) => Cow::Owned(
                decode_values(b, l.rows * l.cols)
                    .unwrap_or_else(|| vec![f64::NAN; l.rows * l.cols]),
            ),
        }
    }

    /// The compressed form, as the snapshot stores it.
    pub fn encoded(&self) -> Cow<'_, [u8]> {
        match &self.data {
            Data::Open(v) => Cow::Owned(encode_values(v)),
            Data::Sealed(b) => Cow::Borrowed(b),
        }
    }

    /// A sealed chunk from snapshot bytes, `None` unless they decode to
    /// exactly one chunk's worth of values.
    pub fn from_encoded(start: i64, bytes: Vec<u8>, l: Layout) -> Option<Self> {
        decode_values(&bytes, l.rows * l.cols)?;
        Some(Chunk {
            start,
            data: Data::Sealed(bytes.into_boxed_slice()),
        })
    }

    pub fn heap_bytes(&self) -> usize {
        match &self.data {
            Data::Open(v) => v.capacity() * 8,
            Data::Sealed(b) => b.len(),
        }
    }
}

fn encode_values(v: &[f64]) -> Vec<u8> {
    let mut w = BitWriter::default();
    encode(v, &mut w);
    w.finish()
}

fn decode_values(b: &[u8], n: usize) -> Option<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    let mut r = BitReader::new(b);
    decode(&mut r, n, &mut out)?;
    r.at_end().then_some(out)
}
