//! Following a message body through a byte stream of which only part is visible.
//!
//! Each syscall contributes `total` bytes, of which only the first `visible` were captured.
//! A Content-Length body is followed by counting alone. A chunked body needs its chunk
//! headers: chunk data may be invisible (it is only counted), and so may the CRLF closing a
//! chunk, but a chunk-size line outside the captured bytes cannot be read, and the body's
//! end is then lost.

/// A body being followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    Length { remaining: u64 },
    Chunked(Chunked),
}

/// How far one syscall's bytes took a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// Bytes of this syscall that belong to the body; the rest start the next message.
    pub used: u64,
    pub end: End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The body continues in later syscalls.
    More,
    /// The body's last byte was within `used`.
    Done,
    /// The framing could not be followed; all of this syscall's bytes were taken.
    Lost,
}

impl Body {
    pub(crate) fn length(n: u64) -> Self {
        Self::Length { remaining: n }
    }

    pub(crate) fn chunked() -> Self {
        Self::Chunked(Chunked::default())
    }

    /// Offer one syscall's bytes: `visible` is the captured prefix of `total` bytes.
    pub(crate) fn feed(&mut self, visible: &[u8], total: u64) -> Step {
        match self {
            Self::Length { remaining } => {
                let used = (*remaining).min(total);
                *remaining -= used;
                let end = if *remaining == 0 {
                    End::Done
                } else {
                    End::More
                };
                Step { used, end }
            }
            Self::Chunked(chunked) => chunked.feed(visible, total),
        }
    }
}

/// Chunked transfer coding (RFC 9112 §7.1), byte by byte where visible.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Chunked {
    state: State,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Reading the hex chunk size; `digits` so far.
    #[default]
    SizeStart,
    Size {
        size: u64,
        digits: u8,
    },
    /// Skipping a chunk extension up to the line feed.
    Extension {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    /// After chunk data: CRLF (or a bare LF).
    DataCr,
    DataLf,
    /// After the last chunk: trailer fields, then a blank line.
    TrailerLineStart,
    TrailerLine,
    TrailerEndLf,
    Done,
}

/// Hex digits in a chunk size; 16 fill a u64.
const MAX_SIZE_DIGITS: u8 = 16;

impl Chunked {
    fn feed(&mut self, visible: &[u8], total: u64) -> Step {
        let visible = visible
            .get(..usize::try_from(total).unwrap_or(usize::MAX))
            .unwrap_or(visible);
        let mut used = 0u64;
        let mut rest = visible;
        while let Some(&byte) = rest.first() {
            // Chunk data is skipped in bulk rather than looked at byte by byte.
            if let State::Data { remaining } = self.state {
                let take = remaining.min(rest.len() as u64);
                self.state = after_data(remaining - take);
                used += take;
                rest = rest.get(take as usize..).unwrap_or_default();
                continue;
            }
            used += 1;
            rest = rest.get(1..).unwrap_or_default();
            match self.step(byte) {
                Some(State::Done) => {
                    self.state = State::Done;
                    return Step {
                        used,
                        end: End::Done,
                    };
                }
                Some(next) => self.state = next,
                None => {
                    return Step {
                        used: total,
                        end: End::Lost,
                    };
                }
            }
        }

        // Past the captured bytes only counting is possible: chunk data and the CRLF after
        // it (which the sender always writes as CRLF) can be skipped, nothing else.
        let mut hidden = total - used;
        while hidden > 0 {
            match self.state {
                State::Data { remaining } => {
                    let take = remaining.min(hidden);
                    self.state = after_data(remaining - take);
                    hidden -= take;
                }
                State::DataCr => {
                    let take = hidden.min(2);
                    self.state = if take == 2 {
                        State::SizeStart
                    } else {
                        State::DataLf
                    };
                    hidden -= take;
                }
                State::DataLf => {
                    self.state = State::SizeStart;
                    hidden -= 1;
                }
                _ => {
                    return Step {
                        used: total,
                        end: End::Lost,
                    };
                }
            }
        }
        Step {
            used: total,
            end: End::More,
        }
    }

    /// The state after one visible byte outside chunk data; `None` for a framing error.
    fn step(&self, byte: u8) -> Option<State> {
        Some(match (self.state, byte) {
            (State::SizeStart, _) => State::Size {
                size: u64::from(hex(byte)?),
                digits: 1,
            },
            (State::Size { size, digits }, _) if hex(byte).is_some() => {
                if digits >= MAX_SIZE_DIGITS {
                    return None;
                }
                State::Size {
                    size: size << 4 | u64::from(hex(byte)?),
                    digits: digits + 1,
                }
            }
            (State::Size { size, .. }, b';' | b' ' | b'\t') => State::Extension { size },
            (State::Size { size, .. }, b'\r') => State::SizeLf { size },
            (
                State::Size { size, .. } | State::Extension { size } | State::SizeLf { size },
                b'\n',
            ) => end_of_size_line(size),
            (State::Size { .. } | State::SizeLf { .. }, _) => return None,
            (State::Extension { size }, _) => State::Extension { size },
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataCr | State::DataLf, b'\n') => State::SizeStart,
            (State::DataCr | State::DataLf, _) => return None,
            (State::TrailerLineStart, b'\r') => State::TrailerEndLf,
            (State::TrailerLineStart | State::TrailerEndLf, b'\n') => State::Done,
            (State::TrailerEndLf, _) => return None,
            (State::TrailerLine, b'\n') => State::TrailerLineStart,
            (State::TrailerLineStart | State::TrailerLine, _) => State::TrailerLine,
            // Data is consumed in bulk by the caller, and nothing follows Done.
            (State::Data { .. } | State::Done, _) => return None,
        })
    }
}

fn after_data(remaining: u64) -> State {
    if remaining == 0 {
        State::DataCr
    } else {
        State::Data { remaining }
    }
}

fn end_of_size_line(size: u64) -> State {
    if size == 0 {
        State::TrailerLineStart
    } else {
        State::Data { remaining: size }
    }
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed a fully visible stream in pieces of `piece` bytes; the step that ended it.
    fn feed_visible(stream: &[u8], piece: usize) -> (u64, End) {
        let mut body = Body::chunked();
        let mut consumed = 0;
        for part in stream.chunks(piece) {
            let step = body.feed(part, part.len() as u64);
            consumed += step.used;
            if step.end != End::More {
                return (consumed, step.end);
            }
        }
        (consumed, End::More)
    }

    #[test]
    fn length_bodies_count_and_leave_the_rest() {
        let mut body = Body::length(10);
        assert_eq!(
            body.feed(b"abcd", 4),
            Step {
                used: 4,
                end: End::More
            }
        );
        assert_eq!(
            body.feed(b"efgh", 1000),
            Step {
                used: 6,
                end: End::Done
            }
        );
        let mut empty = Body::length(0);
        assert_eq!(
            empty.feed(b"x", 1),
            Step {
                used: 0,
                end: End::Done
            }
        );
    }

    #[test]
    fn chunked_in_any_piece_size() {
        let stream = b"5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let body_len = stream.len() as u64 - 4;
        for piece in 1..=stream.len() {
            assert_eq!(
                feed_visible(stream, piece),
                (body_len, End::Done),
                "piece {piece}"
            );
        }
    }

    #[test]
    fn chunked_bare_lf_and_empty_body() {
        assert_eq!(feed_visible(b"3\nabc\n0\n\n", 100), (9, End::Done));
        assert_eq!(feed_visible(b"0\r\n\r\n", 100), (5, End::Done));
        assert_eq!(feed_visible(b"0\r\n\r", 100), (4, End::More));
    }

    #[test]
    fn chunked_errors_lose_framing() {
        assert_eq!(feed_visible(b"zz\r\n", 100), (4, End::Lost));
        assert_eq!(feed_visible(b"3\r\nabcX\r\n", 100), (9, End::Lost));
        assert_eq!(feed_visible(b"11111111111111111\r\n", 100), (19, End::Lost));
        assert_eq!(feed_visible(b"0\r\n\rX", 100), (5, End::Lost));
    }

    #[test]
    fn hidden_chunk_data_and_crlf_are_counted() {
        // One write of a 2000-byte chunk: header and the first bytes visible, the rest not.
        let mut body = Body::chunked();
        let mut write = b"7D0\r\n".to_vec();
        write.resize(1024, b'x');
        let total = 5 + 2000 + 2;
        assert_eq!(
            body.feed(&write, total),
            Step {
                used: total,
                end: End::More
            }
        );
        assert_eq!(
            body.feed(b"0\r\n\r\n", 5),
            Step {
                used: 5,
                end: End::Done
            }
        );
    }

    #[test]
    fn hidden_crlf_split_across_writes() {
        let mut body = Body::chunked();
        // "3\r\nabc": the last data byte is not captured, then CR and LF each in a
        // sendall of their own, none captured.
        assert_eq!(
            body.feed(b"3\r\nab", 6),
            Step {
                used: 6,
                end: End::More
            }
        );
        assert_eq!(
            body.feed(b"", 1),
            Step {
                used: 1,
                end: End::More
            }
        );
        assert_eq!(
            body.feed(b"", 1),
            Step {
                used: 1,
                end: End::More
            }
        );
        assert_eq!(
            body.feed(b"0\r\n\r\n", 5),
            Step {
                used: 5,
                end: End::Done
            }
        );
    }

    #[test]
    fn hidden_chunk_header_loses_framing() {
        let mut body = Body::chunked();
        // The first chunk ends inside the captured bytes; the next chunk header does not.
        let mut read = b"4\r\nabcd\r\n".to_vec();
        read.resize(20, b'?');
        let visible = &read[..9];
        assert_eq!(
            body.feed(visible, 20),
            Step {
                used: 20,
                end: End::Lost
            }
        );
    }
}
