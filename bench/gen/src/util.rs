//! Seeded PRNG, buffered output, time and IP formatting, sliding-window truth.

use std::fs::File;
use std::io::{self, Write};

/// splitmix64: tiny, fast, and fully determined by the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5EC0_0000_0000_0001)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p` percent.
    pub fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// Byte sink: lines are assembled in a Vec and flushed in large chunks.
pub struct Out<W: Write> {
    buf: Vec<u8>,
    w: W,
    pub lines: u64,
}

const FLUSH_AT: usize = 1 << 18;

impl<W: Write> Out<W> {
    pub fn new(w: W) -> Self {
        Out {
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            w,
            lines: 0,
        }
    }

    #[inline]
    pub fn s(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    #[inline]
    pub fn u(&mut self, n: u64) {
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(n).as_bytes());
    }

    #[inline]
    pub fn ip(&mut self, ip: u32) {
        let o = ip.to_be_bytes();
        self.u(u64::from(o[0]));
        self.buf.push(b'.');
        self.u(u64::from(o[1]));
        self.buf.push(b'.');
        self.u(u64::from(o[2]));
        self.buf.push(b'.');
        self.u(u64::from(o[3]));
    }

    #[inline]
    pub fn hex(&mut self, mut v: u64, digits: u32) {
        const H: &[u8; 16] = b"0123456789abcdef";
        let mut tmp = [0u8; 16];
        let d = digits.min(16) as usize;
        for i in (0..d).rev() {
            tmp[i] = H[(v & 15) as usize];
            v >>= 4;
        }
        self.buf.extend_from_slice(&tmp[..d]);
    }

    #[inline]
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Ends the current line; flushes when the buffer is large.
    #[inline]
    pub fn nl(&mut self) -> io::Result<()> {
        self.buf.push(b'\n');
        self.lines += 1;
        if self.buf.len() >= FLUSH_AT {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&self.buf)?;
        self.buf.clear();
        self.w.flush()?;
        Ok(self.w)
    }
}

pub fn create(path: &str) -> io::Result<Out<File>> {
    Ok(Out::new(File::create(path)?))
}

pub fn ip_string(ip: u32) -> String {
    let o = ip.to_be_bytes();
    format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])
}

/// A distinct IP for every index `< 16 * 2^24`, spread over `prefixes`
/// (first octets). Multiplication by an odd constant is a bijection mod 2^24.
pub fn spread_ip(prefixes: &[u8], i: u64) -> u32 {
    let p = prefixes[(i % prefixes.len() as u64) as usize];
    let rest =
        ((i / prefixes.len() as u64 + 0x2F_1D3B).wrapping_mul(0x9E37_79B1) & 0xFF_FFFF) as u32;
    (u32::from(p) << 24) | rest
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[inline]
fn two(buf: &mut [u8], at: usize, v: u32) {
    buf[at] = b'0' + (v / 10) as u8;
    buf[at + 1] = b'0' + (v % 10) as u8;
}

/// RFC 3339 UTC with milliseconds: `2025-11-21T10:00:00.000Z`.
pub fn rfc3339_ms(ms: i64) -> [u8; 24] {
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    let y = y.clamp(0, 9999) as u32;
    two(&mut b, 0, y / 100);
    two(&mut b, 2, y % 100);
    two(&mut b, 5, mo);
    two(&mut b, 8, d);
    two(&mut b, 11, sod / 3600);
    two(&mut b, 14, sod / 60 % 60);
    two(&mut b, 17, sod % 60);
    b[20] = b'0' + (milli / 100) as u8;
    two(&mut b, 21, milli % 100);
    b
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
const MONTH_DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// Seconds in a non-leap year: sshd timestamps stay below this.
pub const YEAR_SECS: u32 = 365 * 86_400;

/// RFC 3164 timestamp `Dec 10 06:55:46` (day space-padded, `Jan  1`) for
/// seconds since Jan 1 00:00:00 of a non-leap year.
pub fn rfc3164(secs: u32) -> [u8; 15] {
    let mut b = *b"Jan  1 00:00:00";
    let mut doy = secs / 86_400;
    let mut m = 0;
    while m < 11 && doy >= MONTH_DAYS[m] {
        doy -= MONTH_DAYS[m];
        m += 1;
    }
    b[..3].copy_from_slice(MONTHS[m]);
    let d = doy + 1;
    b[4] = if d >= 10 { b'0' + (d / 10) as u8 } else { b' ' };
    b[5] = b'0' + (d % 10) as u8;
    let sod = secs % 86_400;
    two(&mut b, 7, sod / 3600);
    two(&mut b, 10, sod / 60 % 60);
    two(&mut b, 13, sod % 60);
    b
}

/// Keys having at least `count` attempts with the first and last of some
/// `count` consecutive attempts at most `window` apart (inclusive). Input:
/// (key, time) pairs, one per attempt, any order. Output sorted.
pub fn keys_reaching(mut attempts: Vec<(u32, i64)>, count: usize, window: i64) -> Vec<u32> {
    let count = count.max(1);
    attempts.sort_unstable();
    let mut out = Vec::new();
    let mut i = 0;
    while i < attempts.len() {
        let key = attempts[i].0;
        let mut j = i;
        while j < attempts.len() && attempts[j].0 == key {
            j += 1;
        }
        let g = &attempts[i..j];
        if g.len() >= count && g.windows(count).any(|w| w[count - 1].1 - w[0].1 <= window) {
            out.push(key);
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats() {
        let d = days_from_civil(2025, 11, 21);
        assert_eq!(civil_from_days(d), (2025, 11, 21));
        let ms = d * 86_400_000 + 10 * 3_600_000 + 5_123;
        assert_eq!(&rfc3339_ms(ms), b"2025-11-21T10:00:05.123Z");
        assert_eq!(&rfc3164(0), b"Jan  1 00:00:00");
        let dec10 = (334 + 9) * 86_400 + 6 * 3600 + 55 * 60 + 46;
        assert_eq!(&rfc3164(dec10), b"Dec 10 06:55:46");
        assert_eq!(&rfc3164(YEAR_SECS - 1), b"Dec 31 23:59:59");
    }

    #[test]
    fn sliding_window_is_inclusive() {
        let v = vec![(1, 0), (1, 10), (1, 20), (2, 0), (2, 21), (2, 10)];
        assert_eq!(keys_reaching(v.clone(), 3, 20), vec![1]);
        assert_eq!(keys_reaching(v, 3, 21), vec![1, 2]);
    }

    #[test]
    fn spread_ips_are_distinct() {
        let mut v: Vec<u32> = (0..100_000).map(|i| spread_ip(&[1, 2, 3], i)).collect();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 100_000);
    }
}
