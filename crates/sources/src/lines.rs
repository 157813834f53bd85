//! Bounded line splitting over any byte stream.
//!
//! [`LineReader`] cuts a `Read` into lines ending in `\n` (a trailing `\r` is
//! stripped) using one reusable buffer and `memchr`. A line longer than the
//! configured maximum is never buffered: the reader skips to its newline while
//! only counting bytes and yields [`Item::TooLong`], so memory stays bounded by
//! the maximum even for a gigabyte without a newline.
//!
//! Two end-of-stream behaviours exist because they mean different things:
//! reading a whole file (replay, stdin) yields a last line that has no newline,
//! while tailing holds it back, since the writer may be in the middle of it.
//!
//! Non-goals: no decoding (lines are bytes; UTF-8 is the parser's business), no
//! IO of its own beyond `Read::read`, no seeking (the caller positions the
//! stream and says where it starts with [`LineReader::starting_at`]).

use std::io::{self, Read};

/// Default maximum line length: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// The buffer starts at this size, so short-line workloads still read in
/// large chunks (few syscalls, long `memchr` runs); it grows towards
/// `max_line + 1` only when a line does not fit.
const MIN_BUF: usize = 256 << 10;

/// One thing read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// A complete line, without its `\n` and without a `\r` just before it.
    Line {
        /// 1-based line number in the stream (continues from `starting_at`).
        line_no: u64,
        bytes: &'a [u8],
        /// Stream offset just past this line's `\n` (or past its last byte
        /// for a final line without one): where reading resumes after it.
        end_offset: u64,
    },
    /// A line longer than the maximum; its bytes were skipped, not kept.
    TooLong {
        line_no: u64,
        /// The line's length in bytes, excluding the `\n` (a `\r` counts).
        len: u64,
        end_offset: u64,
    },
}

impl Item<'_> {
    pub fn line_no(&self) -> u64 {
        match self {
            Item::Line { line_no, .. } | Item::TooLong { line_no, .. } => *line_no,
        }
    }
    pub fn end_offset(&self) -> u64 {
        match self {
            Item::Line { end_offset, .. } | Item::TooLong { end_offset, .. } => *end_offset,
        }
    }
}

/// What was found in the buffer, as indices, so the borrow of the buffer is
/// taken only once the loop that mutates it is over.
enum Found {
    Line { start: usize, end: usize },
    TooLong { len: u64 },
    Nothing,
}

/// Splits a byte stream into lines; see the module docs.
pub struct LineReader<R> {
    inner: R,
    /// Allocated on first read so builder calls can still size it.
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    /// Stream offset of `buf[pos]`: everything before it has been yielded.
    offset: u64,
    /// Stream offset just past the last byte pulled from `inner`.
    pulled: u64,
    line_no: u64,
    max_line: usize,
    tail: bool,
    /// Inside an over-long line: how many of its bytes have been skipped.
    skipping: Option<u64>,
    /// Whole-stream mode only: `inner` reported end of stream.
    done: bool,
}

impl<R: Read> LineReader<R> {
    /// A whole-stream reader with the default maximum line length.
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            pos: 0,
            filled: 0,
            offset: 0,
            pulled: 0,
            line_no: 0,
            max_line: DEFAULT_MAX_LINE,
            tail: false,
            skipping: None,
            done: false,
        }
    }

    /// Sets the maximum line length in bytes (at least 1). Call before reading.
    pub fn max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line.max(1);
        self.buf = Vec::new();
        self
    }

    /// Tail mode: at the current end of the stream a partial last line is
    /// held back until its newline arrives, and reading may resume later
    /// (a `Read` that returned 0 is asked again on the next call).
    pub fn tail_mode(mut self, tail: bool) -> Self {
        self.tail = tail;
        self
    }

    /// Declares that `inner` is already positioned at stream offset `offset`
    /// and that `line_no` lines precede it (resuming from a checkpoint).
    pub fn starting_at(mut self, offset: u64, line_no: u64) -> Self {
        self.offset = offset;
        self.pulled = offset;
        self.line_no = line_no;
        self
    }

    /// Stream offset of the first byte not yet yielded: a safe resume point.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Stream offset just past the last byte read from the inner reader
    /// (includes a held-back partial line).
    pub fn read_offset(&self) -> u64 {
        self.pulled
    }

    /// Lines yielded so far (including skipped over-long ones), plus the
    /// starting count.
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// Bytes held for an incomplete last line (tail mode).
    pub fn pending_len(&self) -> u64 {
        self.pulled - self.offset
    }

    /// Bytes of buffer allocated: bounded by `max(max_line + 1, 256 KiB)`
    /// whatever the input; 256 KiB unless a long line needed more.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Forgets buffered data and restarts numbering: used after the caller
    /// repositioned `inner` (for example to 0 after a truncation).
    pub fn reset(&mut self, offset: u64, line_no: u64) {
        self.pos = 0;
        self.filled = 0;
        self.offset = offset;
        self.pulled = offset;
        self.line_no = line_no;
        self.skipping = None;
        self.done = false;
    }

    /// Frees the buffer if it holds nothing (no partial line): a tailer
    /// following many quiet files should not keep a buffer for each.
    pub fn release_buffer(&mut self) {
        if self.pos == self.filled {
            self.buf = Vec::new();
            self.pos = 0;
            self.filled = 0;
        }
    }

    fn ensure_buf(&mut self) {
        if self.buf.is_empty() {
            self.buf = vec![0; MIN_BUF];
        }
    }

    /// Reads into the free end of the buffer, compacting first. Returns the
    /// number of bytes read (0 = end of stream for now).
    fn fill(&mut self) -> io::Result<usize> {
        self.ensure_buf();
        if self.pos > 0
            && (self.pos == self.filled || self.buf.len() - self.filled < self.buf.len() / 2)
        {
            // Moves at most one partial line; amortised over half a buffer.
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
        }
        let limit = self.max_line.saturating_add(1).max(MIN_BUF);
        if self.filled == self.buf.len() && self.buf.len() < limit {
            // A line longer than the buffer but within the limit: grow.
            let len = self.buf.len().saturating_mul(2).min(limit);
            self.buf.resize(len, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.filled..]) {
                Ok(n) => {
                    self.filled += n;
                    self.pulled += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn find(&mut self) -> io::Result<Found> {
        loop {
            let window = &self.buf[self.pos..self.filled];
            if let Some(skipped) = self.skipping {
                if let Some(i) = memchr::memchr(b'\n', window) {
                    self.skipping = None;
                    self.pos += i + 1;
                    self.offset += i as u64 + 1;
                    return Ok(Found::TooLong {
                        len: skipped + i as u64,
                    });
                }
                // Drop everything: this is what keeps memory bounded.
                let n = window.len() as u64;
                self.skipping = Some(skipped + n);
                self.offset += n;
                self.pos = 0;
                self.filled = 0;
            } else if let Some(i) = memchr::memchr(b'\n', window) {
                let start = self.pos;
                self.pos += i + 1;
                self.offset += i as u64 + 1;
                if i > self.max_line {
                    return Ok(Found::TooLong { len: i as u64 });
                }
                return Ok(Found::Line {
                    start,
                    end: start + i,
                });
            } else if window.len() > self.max_line {
                let n = window.len() as u64;
                self.skipping = Some(n);
                self.offset += n;
                self.pos = 0;
                self.filled = 0;
            }
            if self.done {
                return Ok(Found::Nothing);
            }
            if self.fill()? == 0 {
                if self.tail {
                    return Ok(Found::Nothing);
                }
                self.done = true;
                return Ok(self.take_partial());
            }
        }
    }

    /// Consumes whatever partial line is held, as a final line.
    fn take_partial(&mut self) -> Found {
        if let Some(skipped) = self.skipping.take() {
            return Found::TooLong { len: skipped };
        }
        if self.pos == self.filled {
            return Found::Nothing;
        }
        let (start, end) = (self.pos, self.filled);
        self.offset += (end - start) as u64;
        self.pos = end;
        Found::Line { start, end }
    }

    fn item(&mut self, found: Found, strip_cr: bool) -> Option<Item<'_>> {
        match found {
            Found::Nothing => None,
            Found::TooLong { len } => {
                self.line_no += 1;
                Some(Item::TooLong {
                    line_no: self.line_no,
                    len,
                    end_offset: self.offset,
                })
            }
            Found::Line { start, mut end } => {
                self.line_no += 1;
                if strip_cr && end > start && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
                Some(Item::Line {
                    line_no: self.line_no,
                    bytes: &self.buf[start..end],
                    end_offset: self.offset,
                })
            }
        }
    }

    /// The next line, or `None` at the end of the stream (in tail mode: at
    /// the current end; call again once more data may have arrived).
    pub fn next_item(&mut self) -> io::Result<Option<Item<'_>>> {
        let found = self.find()?;
        Ok(self.item(found, true))
    }

    /// Yields a held-back partial line as a final line (tail mode, when the
    /// file is being let go: deleted or rotated away and fully drained).
    pub fn finish(&mut self) -> Option<Item<'_>> {
        let found = self.take_partial();
        self.item(found, true)
    }

    /// Fills `out` (cleared first) with lines until it holds about
    /// `out.target_bytes()` bytes or the stream has no complete line left.
    /// Returns whether anything was added. One copy per line into a reused
    /// buffer: no allocation per line once the batch has warmed up.
    pub fn next_batch(&mut self, out: &mut LineBatch) -> io::Result<bool> {
        out.clear();
        while out.data.len() < out.target_bytes {
            let found = self.find()?;
            match self.item(found, true) {
                None => break,
                Some(Item::Line {
                    line_no,
                    bytes,
                    end_offset,
                }) => out.push(line_no, bytes, end_offset, None),
                Some(Item::TooLong {
                    line_no,
                    len,
                    end_offset,
                }) => out.push(line_no, &[], end_offset, Some(len)),
            }
        }
        Ok(!out.is_empty())
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: usize,
    end: usize,
    line_no: u64,
    end_offset: u64,
    /// `u64::MAX` = not too long (keeps the entry small and `Copy`).
    too_long: u64,
}

/// A reusable batch of lines stored back to back in one `Vec<u8>`.
#[derive(Debug, Clone)]
pub struct LineBatch {
    data: Vec<u8>,
    entries: Vec<Entry>,
    target_bytes: usize,
}

/// One line of a [`LineBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLine<'a> {
    pub line_no: u64,
    /// Empty for an over-long line.
    pub bytes: &'a [u8],
    pub end_offset: u64,
    /// `Some(len)` if the line was over-long and skipped.
    pub too_long: Option<u64>,
}

impl Default for LineBatch {
    fn default() -> Self {
        Self::new(256 << 10)
    }
}

impl LineBatch {
    /// A batch that `next_batch` fills up to about `target_bytes` of line
    /// data (it may exceed it by one line).
    pub fn new(target_bytes: usize) -> Self {
        LineBatch {
            data: Vec::with_capacity(target_bytes + 4096),
            entries: Vec::new(),
            target_bytes: target_bytes.max(1),
        }
    }

    pub fn target_bytes(&self) -> usize {
        self.target_bytes
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total bytes of line data held.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Stream offset past the last line: where to resume after this batch.
    pub fn end_offset(&self) -> Option<u64> {
        self.entries.last().map(|e| e.end_offset)
    }

    pub fn push(&mut self, line_no: u64, bytes: &[u8], end_offset: u64, too_long: Option<u64>) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.entries.push(Entry {
            start,
            end: self.data.len(),
            line_no,
            end_offset,
            too_long: too_long.unwrap_or(u64::MAX),
        });
    }

    pub fn get(&self, i: usize) -> Option<BatchLine<'_>> {
        self.entries.get(i).map(|e| self.line(e))
    }

    fn line(&self, e: &Entry) -> BatchLine<'_> {
        BatchLine {
            line_no: e.line_no,
            bytes: &self.data[e.start..e.end],
            end_offset: e.end_offset,
            too_long: (e.too_long != u64::MAX).then_some(e.too_long),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = BatchLine<'_>> + '_ {
        self.entries.iter().map(|e| self.line(e))
    }

    /// Each line's text, in [`iter`](Self::iter)'s order, when the batch's
    /// data is valid UTF-8 as a whole: one validation per batch is much
    /// cheaper than one per line. A line is `None` when it is over-long, or
    /// does not start and end on a character boundary (a character split
    /// across two lines): the caller validates those itself.
    pub fn texts(&self) -> Option<impl Iterator<Item = Option<&str>> + '_> {
        let all = std::str::from_utf8(&self.data).ok()?;
        Some(self.entries.iter().map(move |e| {
            if e.too_long == u64::MAX {
                all.get(e.start..e.end)
            } else {
                None
            }
        }))
    }
}
