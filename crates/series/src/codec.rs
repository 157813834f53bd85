//! Bit-level compression of sealed chunks and the snapshot checksum.
//!
//! Columns of `f64` are XOR-encoded the way Facebook's Gorilla paper does it:
//! a value equal to the previous one costs one bit, a value whose XOR with the
//! previous one fits the previous "meaningful bits" window costs two bits plus
//! the window, anything else two bits plus 11 bits of header plus the window.
//! Dashboard metrics are mostly flat gauges and slowly rising counters, for
//! which this is one to a few bits per sample instead of 64. Absent samples are
//! the canonical NaN, so a run of gaps compresses to one bit each as well.
//!
//! Timestamps are not encoded at all: rows are fixed slots of a fixed step, so
//! the time of a row is its index. This module does not know about slots,
//! chunks or series; it only turns `&[f64]` into bits and back, and never
//! panics on bad input (decoding returns `None`).

/// Appends bits most-significant first, 64 at a time through an accumulator
/// (sealing every chunk at the hour is the hot path of a sweep).
#[derive(Default)]
pub(crate) struct BitWriter {
    buf: Vec<u8>,
    /// The low `nacc` bits are pending, oldest highest; `nacc < 64`.
    acc: u64,
    nacc: u32,
}

impl BitWriter {
    /// Writes the low `n` bits of `value` (`n <= 64`).
    pub(crate) fn write(&mut self, value: u64, n: u32) {
        let n = n.min(64);
        if n == 0 {
            return;
        }
        let value = if n < 64 {
            value & ((1u64 << n) - 1)
        } else {
            value
        };
        let free = 64 - self.nacc;
        if n < free {
            self.acc = (self.acc << n) | value;
            self.nacc += n;
            return;
        }
        // Fill the word with the top `free` bits, flush, keep the rest.
        let rest = n - free;
        let word = if free == 64 {
            value
        } else {
            (self.acc << free) | (value >> rest)
        };
        self.buf.extend_from_slice(&word.to_be_bytes());
        self.acc = if rest == 0 {
            0
        } else {
            value & ((1u64 << rest) - 1)
        };
        self.nacc = rest;
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.nacc > 0 {
            let word = self.acc << (64 - self.nacc);
            let bytes = self.nacc.div_ceil(8) as usize;
            self.buf.extend_from_slice(&word.to_be_bytes()[..bytes]);
        }
        self.buf
    }
}

/// Reads what [`BitWriter`] wrote; `None` past the end.
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    pos: u64,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        BitReader { buf, pos: 0 }
    }

    pub(crate) fn read(&mut self, n: u32) -> Option<u64> {
        let n = n.min(64);
        if n > 56 {
            let hi = self.read(n - 32)?;
            return Some((hi << 32) | self.read(32)?);
        }
        if n == 0 {
            return Some(0);
        }
        let i = usize::try_from(self.pos / 8).ok()?;
        let off = (self.pos % 8) as u32;
        // Fast path: one unaligned big-endian load covers off + n <= 63 bits.
        if let Some(b) = self.buf.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            self.pos += u64::from(n);
            return Some((u64::from_be_bytes(w) << off) >> (64 - n));
        }
        // Near the end: byte by byte, refusing to run past it.
        let mut n = n;
        let mut out = 0u64;
        while n > 0 {
            let byte = *self.buf.get(usize::try_from(self.pos / 8).ok()?)?;
            let used = (self.pos % 8) as u32;
            let avail = 8 - used;
            let take = avail.min(n);
            let bits = (u16::from(byte) >> (avail - take)) & ((1u16 << take) - 1);
            out = (out << take) | u64::from(bits);
            n -= take;
            self.pos += u64::from(take);
        }
        Some(out)
    }

    /// True when fewer than 8 bits remain (only padding may follow).
    pub(crate) fn at_end(&self) -> bool {
        ((self.buf.len() as u64) * 8).saturating_sub(self.pos) < 8
    }
}

/// Appends `values` XOR-encoded to `w`.
pub(crate) fn encode(values: &[f64], w: &mut BitWriter) {
    let mut prev = 0u64;
    // (leading zeros, trailing zeros) of the last explicit window.
    let mut window: Option<(u32, u32)> = None;
    for (i, v) in values.iter().enumerate() {
        let bits = v.to_bits();
        if i == 0 {
            w.write(bits, 64);
            prev = bits;
            continue;
        }
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.write(0, 1);
            continue;
        }
        w.write(1, 1);
        // 5 bits hold at most 31 leading zeros; more are kept as meaningful.
        let lead = x.leading_zeros().min(31);
        let trail = x.trailing_zeros();
        match window {
            Some((pl, pt)) if lead >= pl && trail >= pt => {
                w.write(0, 1);
                w.write(x >> pt, 64 - pl - pt);
            }
            _ => {
                let sig = 64 - lead - trail;
                w.write(1, 1);
                w.write(u64::from(lead), 5);
                w.write(u64::from(sig - 1), 6);
                w.write(x >> trail, sig);
                window = Some((lead, trail));
            }
        }
    }
}

/// Decodes `n` values from `r` into `out`; `None` if the bits are not a
/// valid encoding (truncated, or a window wider than 64 bits).
pub(crate) fn decode(r: &mut BitReader<'_>, n: usize, out: &mut Vec<f64>) -> Option<()> {
    let mut prev = 0u64;
    let mut window: Option<(u32, u32)> = None;
    for i in 0..n {
        if i == 0 {
            prev = r.read(64)?;
            out.push(f64::from_bits(prev));
            continue;
        }
        if r.read(1)? == 1 {
            let (lead, sig) = if r.read(1)? == 0 {
                let (pl, pt) = window?;
                (pl, 64 - pl - pt)
            } else {
                let lead = r.read(5)? as u32;
                let sig = r.read(6)? as u32 + 1;
                if lead + sig > 64 {
                    return None;
                }
                window = Some((lead, 64 - lead - sig));
                (lead, sig)
            };
            let trail = 64 - lead - sig;
            prev ^= r.read(sig)? << trail;
        }
        out.push(f64::from_bits(prev));
    }
    Some(())
}

/// Slicing-by-8 tables: `T[0]` is the classic byte table, `T[k]` advances a
/// byte through `k` more zero bytes, so eight bytes fold in one step.
const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut c = t[0][i];
        let mut k = 1;
        while k < 8 {
            c = t[0][(c & 0xff) as usize] ^ (c >> 8);
            t[k][i] = c;
            k += 1;
        }
        i += 1;
    }
    t
}

static CRC: [[u32; 256]; 8] = crc_tables();

/// CRC-32 (IEEE, as zlib and PNG): detects truncation and torn or flipped
/// bytes in a snapshot. It is not a MAC; the snapshot is not a trust boundary.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let t = &CRC;
    let mut c = !0u32;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let lo = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) ^ c;
        let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        c = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in words.remainder() {
        c = t[0][((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(values: &[f64]) -> (Vec<f64>, usize) {
        let mut w = BitWriter::default();
        encode(values, &mut w);
        let bytes = w.finish();
        let mut out = Vec::new();
        let mut r = BitReader::new(&bytes);
        decode(&mut r, values.len(), &mut out).unwrap();
        assert!(r.at_end());
        (out, bytes.len())
    }

    #[test]
    fn crc_matches_the_standard_check_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn flat_and_missing_values_cost_a_bit_each() {
        let mut v = vec![42.0; 360];
        v[100..200].fill(f64::NAN);
        let (out, len) = round_trip(&v);
        assert_eq!(out[..100], v[..100]);
        assert!(out[150].is_nan());
        // 64 bits for the first value, two window changes, ~1 bit per row.
        assert!(len < 70, "{len} bytes");
    }

    #[test]
    fn truncated_input_is_none_not_a_panic() {
        let v: Vec<f64> = (0..50).map(|i| f64::from(i) * 1.7).collect();
        let mut w = BitWriter::default();
        encode(&v, &mut w);
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            let mut out = Vec::new();
            assert!(decode(&mut BitReader::new(&bytes[..cut]), v.len(), &mut out).is_none());
        }
    }

    proptest! {
        #[test]
        fn any_values_round_trip_bit_exactly(v in proptest::collection::vec(any::<f64>(), 0..400)) {
            let (out, _) = round_trip(&v);
            let a: Vec<u64> = v.iter().map(|x| x.to_bits()).collect();
            let b: Vec<u64> = out.iter().map(|x| x.to_bits()).collect();
            prop_assert_eq!(a, b);
        }

        #[test]
        fn bit_fields_of_any_width_round_trip(fields in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..100)) {
            let mut w = BitWriter::default();
            for &(v, n) in &fields {
                w.write(v, n);
            }
            let bytes = w.finish();
            let total: u32 = fields.iter().map(|f| f.1).sum();
            prop_assert_eq!(bytes.len(), total.div_ceil(8) as usize);
            let mut r = BitReader::new(&bytes);
            for &(v, n) in &fields {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read(n), Some(v & mask));
            }
            prop_assert!(r.at_end());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), n in 0usize..400) {
            let mut out = Vec::new();
            let _ = decode(&mut BitReader::new(&bytes), n, &mut out);
        }
    }
}
