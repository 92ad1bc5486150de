//! Newline-delimited framing for the pool host's nonblocking descriptors:
//! lines in, with a cap on their length, and a queue of lines out.
//!
//! Memory stays proportional to what is in flight: a connection that is
//! idle holds no buffer, and one that carried a megabyte gives it back once
//! the line is through.

use std::io::{self, Write};

/// What an idle connection may keep of its buffers.
const KEEP: usize = 16 << 10;

/// One event of the input framing.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Line(&'a [u8]),
    /// A line longer than the cap was dropped (the part already read, and
    /// the rest up to its newline as it arrives).
    Oversized,
}

/// Splits a byte stream into lines of at most `max` bytes.
#[derive(Debug)]
pub struct LineReader {
    partial: Vec<u8>,
    max: usize,
    /// Inside a line over the cap: drop bytes up to the next newline.
    discarding: bool,
}

impl LineReader {
    pub fn new(max: usize) -> LineReader {
        LineReader { partial: Vec::new(), max, discarding: false }
    }

    /// Feeds bytes just read; calls `each` for every complete line (without
    /// its newline; a trailing `\r` is kept, JSON ignores it as whitespace).
    /// A line is handed over straight from `data` when nothing of it was
    /// buffered: the common case copies nothing.
    pub fn feed(&mut self, mut data: &[u8], each: &mut dyn FnMut(Frame)) {
        while let Some(nl) = memchr::memchr(b'\n', data) {
            let (head, rest) = (&data[..nl], &data[nl + 1..]);
            data = rest;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            if self.partial.is_empty() {
                if head.len() > self.max {
                    each(Frame::Oversized);
                } else if !head.is_empty() {
                    each(Frame::Line(head));
                }
            } else if self.partial.len() + head.len() > self.max {
                self.release();
                each(Frame::Oversized);
            } else {
                self.partial.extend_from_slice(head);
                let line = std::mem::take(&mut self.partial);
                each(Frame::Line(&line));
                // The buffer is kept for the next line: a stream of large
                // messages reuses it instead of faulting in fresh pages for
                // each; `tidy` gives it back once the connection is quiet.
                self.partial = line;
                self.partial.clear();
            }
        }
        if data.is_empty() || self.discarding {
            return;
        }
        if self.partial.len() + data.len() > self.max {
            self.release();
            self.discarding = true;
            each(Frame::Oversized);
        } else {
            self.partial.extend_from_slice(data);
        }
    }

    /// Empties the partial line of a dropped oversized message, keeping a
    /// small buffer at most.
    fn release(&mut self) {
        self.partial.clear();
        self.partial.shrink_to(KEEP);
    }

    /// Gives back what a quiet connection holds beyond a small buffer;
    /// true if there was anything to give back.
    pub fn tidy(&mut self) -> bool {
        let big = self.partial.is_empty() && self.partial.capacity() > KEEP;
        if big {
            self.partial.shrink_to(KEEP);
        }
        big
    }
}

/// Lines waiting for a nonblocking descriptor to take them.
#[derive(Debug, Default)]
pub struct OutQueue {
    buf: Vec<u8>,
    start: usize,
}

impl OutQueue {
    pub fn push_line(&mut self, line: &[u8]) {
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
    }

    /// Gives back what an empty queue holds beyond a small buffer; true if
    /// there was anything to give back.
    pub fn tidy(&mut self) -> bool {
        let big = self.is_empty() && self.buf.capacity() > KEEP;
        if big {
            self.buf.shrink_to(KEEP);
        }
        big
    }

    /// Bytes not yet written.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes what `w` takes without blocking; `Ok(true)` once empty.
    pub fn flush(&mut self, w: &mut dyn Write) -> io::Result<bool> {
        while self.start < self.buf.len() {
            match w.write(&self.buf[self.start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.start == self.buf.len() {
            // Kept for the next lines; see `LineReader::feed` and `tidy`.
            self.buf.clear();
            self.start = 0;
            return Ok(true);
        }
        // Reclaim the written head once it is most of the buffer.
        if self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(r: &mut LineReader, chunks: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c, &mut |f| {
                out.push(match f {
                    Frame::Line(l) => Some(l.to_vec()),
                    Frame::Oversized => None,
                })
            });
        }
        out
    }

    #[test]
    fn lines_split_across_reads_and_several_per_read() {
        let mut r = LineReader::new(100);
        let got = frames(&mut r, &[b"{\"a\"", b":1}\n{\"b\":2}\n\n{\"c\"", b":3}\n"]);
        assert_eq!(got, vec![Some(b"{\"a\":1}".to_vec()), Some(b"{\"b\":2}".to_vec()), Some(b"{\"c\":3}".to_vec())]);
    }

    #[test]
    fn an_oversized_line_is_reported_once_and_the_next_line_survives() {
        let mut r = LineReader::new(8);
        let got = frames(&mut r, &[b"0123456", b"789abc", b"def\nok\n", b"0123456789\nfine\n"]);
        assert_eq!(got, vec![None, Some(b"ok".to_vec()), None, Some(b"fine".to_vec())]);
        assert!(r.partial.capacity() <= KEEP);
    }

    #[test]
    fn a_line_exactly_at_the_cap_passes() {
        let mut r = LineReader::new(4);
        assert_eq!(frames(&mut r, &[b"ab", b"cd\n"]), vec![Some(b"abcd".to_vec())]);
        assert_eq!(frames(&mut r, &[b"abcde\n"]), vec![None]);
    }

    /// Takes at most `n` bytes per call, then would block.
    struct Trickle {
        got: Vec<u8>,
        n: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(3) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let k = b.len().min(self.n);
            self.got.extend_from_slice(&b[..k]);
            Ok(k)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_queue_writes_everything_in_order_across_would_block() {
        let mut q = OutQueue::default();
        let mut w = Trickle { got: Vec::new(), n: 5, calls: 0 };
        q.push_line(b"first line");
        q.push_line(b"second");
        let mut rounds = 0;
        while !q.flush(&mut w).expect("no error") {
            q.push_line(b"more");
            rounds += 1;
            assert!(rounds < 100);
        }
        let text = String::from_utf8(w.got).expect("utf-8");
        assert!(text.starts_with("first line\nsecond\n"), "{text}");
        assert!(text.lines().skip(2).all(|l| l == "more"), "{text}");
        assert!(q.is_empty());
    }
}
