//! A reader that retries with smaller reads when the kernel refuses a large one. Some pseudo
//! files allocate a kernel buffer of the size asked for and fail with `ENOMEM` when it is large
//! (every file under `/proc/sys` refuses a read of 4 MiB or more); the chunker asks for many
//! megabytes at a time, so such files could not be backed up at all.

use std::io::{self, Read};

/// The smallest read tried; every pseudo file serves a page.
const SMALLEST: usize = 4096;

/// Wraps a reader; after the first `ENOMEM` it keeps to reads it was able to serve.
pub(crate) struct ShrinkingReader<R> {
    inner: R,
    limit: usize,
}

impl<R: Read> ShrinkingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            limit: usize::MAX,
        }
    }
}

impl<R: Read> Read for ShrinkingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let want = buf.len().min(self.limit);
            match self.inner.read(&mut buf[..want]) {
                Err(e) if is_out_of_memory(&e) && want > SMALLEST => {
                    self.limit = (want / 16).max(SMALLEST);
                }
                other => return other,
            }
        }
    }
}

fn is_out_of_memory(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::ENOMEM)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Serves `data` but refuses, as `/proc/sys` does, any read larger than `max`.
    struct Picky {
        data: io::Cursor<Vec<u8>>,
        max: usize,
        refused: usize,
    }

    impl Read for Picky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if buf.len() > self.max {
                self.refused += 1;
                return Err(io::Error::from_raw_os_error(nix::libc::ENOMEM));
            }
            self.data.read(buf)
        }
    }

    #[test]
    fn a_refused_large_read_is_retried_smaller_and_everything_is_read() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let picky = Picky {
            data: io::Cursor::new(data.clone()),
            max: 64 << 10,
            refused: 0,
        };
        let mut reader = ShrinkingReader::new(picky);
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 << 20];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, data);
        // Once it learnt the size, it stops asking for more.
        assert_eq!(reader.inner.refused, 2);
    }

    #[test]
    fn other_errors_and_small_refusals_are_passed_on() {
        let picky = Picky {
            data: io::Cursor::new(vec![1; 10]),
            max: 100,
            refused: 0,
        };
        let mut reader = ShrinkingReader::new(picky);
        let err = reader.read(&mut [0u8; 4096]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ENOMEM));
    }
}
