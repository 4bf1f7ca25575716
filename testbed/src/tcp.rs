//! Byte-exact TCP transfer: `tcp-source` sends a pseudo-random stream from a
//! seed, `tcp-sink` regenerates it and compares every byte.
//!
//! Both run inside lab namespaces as hidden warden-lab subcommands. The sink
//! succeeds only on exactly the expected number of matching bytes followed by
//! EOF; the first differing offset is reported.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Deterministic byte stream (SplitMix64), cheap enough to verify at line
/// rate.
#[derive(Debug, Clone)]
pub struct PatternStream {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl PatternStream {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).to_le_bytes()
    }

    /// Fills `out` with the next bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        // Drain the current word, then whole words, then keep a partial one.
        // `used` stays within 0..=8, so the ranges below are in bounds.
        let head = (8 - self.used).min(out.len());
        let (first, rest) = out.split_at_mut(head);
        first.copy_from_slice(&self.word[self.used..self.used + head]);
        self.used += head;
        let mut chunks = rest.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_word());
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            self.word = self.next_word();
            let n = tail.len();
            tail.copy_from_slice(&self.word[..n]);
            self.used = n;
        }
    }
}

/// Errors of the transfer.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no connection to {addr} within {secs} s")]
    AcceptTimeout { addr: SocketAddr, secs: u64 },
    #[error("{what} after {offset} bytes: {source}")]
    Io {
        what: &'static str,
        offset: u64,
        source: std::io::Error,
    },
    #[error("byte {offset} differs: expected {expected:#04x}, received {received:#04x}")]
    Mismatch {
        offset: u64,
        expected: u8,
        received: u8,
    },
    #[error("connection closed after {received} of {expected} bytes")]
    Short { received: u64, expected: u64 },
    #[error("received more than the expected {expected} bytes")]
    Excess { expected: u64 },
    #[error("transfer not finished within {secs} s ({offset} bytes)")]
    Timeout { secs: u64, offset: u64 },
}

/// What a finished transfer measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Transfer {
    /// Throughput in Mbit/s.
    pub fn mbit_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        self.bytes as f64 * 8.0 / secs / 1e6
    }
}

const CHUNK: usize = 64 * 1024;
const IDLE: Duration = Duration::from_secs(10);

fn remaining(deadline: Instant, secs: u64, offset: u64) -> Result<Duration, TcpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(TcpError::Timeout { secs, offset })
    } else {
        Ok(left.min(IDLE))
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Binds `listen`; the caller reports readiness, then calls [`sink_accept`].
pub fn sink_bind(listen: SocketAddr) -> Result<TcpListener, TcpError> {
    TcpListener::bind(listen).map_err(|source| TcpError::Bind {
        addr: listen,
        source,
    })
}

/// Accepts one connection and verifies `bytes` bytes of the stream for
/// `seed`, followed by EOF, within `timeout`.
pub fn sink_accept(
    listener: &TcpListener,
    bytes: u64,
    seed: u64,
    timeout: Duration,
) -> Result<Transfer, TcpError> {
    let secs = timeout.as_secs();
    let deadline = Instant::now() + timeout;
    let addr = listener.local_addr().map_err(|source| TcpError::Io {
        what: "local address",
        offset: 0,
        source,
    })?;
    let io = |what: &'static str, offset: u64| {
        move |source| TcpError::Io {
            what,
            offset,
            source,
        }
    };
    listener.set_nonblocking(true).map_err(io("listen", 0))?;
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {
                if Instant::now() >= deadline {
                    return Err(TcpError::AcceptTimeout { addr, secs });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(io("accept", 0)(e)),
        }
    };
    let start = Instant::now();
    stream.set_nonblocking(false).map_err(io("socket", 0))?;
    let mut expected = PatternStream::new(seed);
    let mut want = vec![0u8; CHUNK];
    let mut got = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline, secs, offset)?))
            .map_err(io("socket", offset))?;
        let n = match stream.read(&mut got) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                remaining(deadline, secs, offset)?;
                continue;
            }
            Err(e) => return Err(io("read", offset)(e)),
        };
        let received = got.get(..n).unwrap_or(&[]);
        let left = bytes.saturating_sub(offset);
        if n as u64 > left {
            return Err(TcpError::Excess { expected: bytes });
        }
        let want = want.get_mut(..n).unwrap_or(&mut []);
        expected.fill(want);
        if let Some(i) = want.iter().zip(received).position(|(a, b)| a != b) {
            return Err(TcpError::Mismatch {
                offset: offset + i as u64,
                expected: want.get(i).copied().unwrap_or(0),
                received: received.get(i).copied().unwrap_or(0),
            });
        }
        offset += n as u64;
    }
    if offset != bytes {
        return Err(TcpError::Short {
            received: offset,
            expected: bytes,
        });
    }
    Ok(Transfer {
        bytes,
        elapsed: start.elapsed(),
    })
}

/// Connects to `addr` (retrying while refused) and sends `bytes` bytes of
/// the stream for `seed`, then waits for the sink to close, within `timeout`.
pub fn source(
    addr: SocketAddr,
    bytes: u64,
    seed: u64,
    timeout: Duration,
) -> Result<Transfer, TcpError> {
    source_paced(addr, bytes, seed, timeout, None)
}

/// [`source`], writing no faster than `rate` bytes per second when given,
/// so that a transfer lasts long enough for something to happen during it.
pub fn source_paced(
    addr: SocketAddr,
    bytes: u64,
    seed: u64,
    timeout: Duration,
    rate: Option<u64>,
) -> Result<Transfer, TcpError> {
    let secs = timeout.as_secs();
    let deadline = Instant::now() + timeout;
    let io = |what: &'static str, offset: u64| {
        move |source| TcpError::Io {
            what,
            offset,
            source,
        }
    };
    let mut stream = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1))) {
            Ok(s) => break s,
            Err(e)
                if Instant::now() + Duration::from_millis(100) < deadline
                    && matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::Interrupted
                    ) =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(source) => return Err(TcpError::Connect { addr, source }),
        }
    };
    let start = Instant::now();
    let mut pattern = PatternStream::new(seed);
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    while offset < bytes {
        if let Some(rate) = rate.filter(|&r| r > 0) {
            let due = start + Duration::from_secs_f64(offset as f64 / rate as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let n = usize::try_from(bytes - offset).map_or(CHUNK, |left| left.min(CHUNK));
        let chunk = buf.get_mut(..n).unwrap_or(&mut []);
        pattern.fill(chunk);
        stream
            .set_write_timeout(Some(remaining(deadline, secs, offset)?))
            .map_err(io("socket", offset))?;
        let mut sent = 0;
        while sent < n {
            match stream.write(chunk.get(sent..).unwrap_or(&[])) {
                Ok(0) => return Err(io("write", offset)(ErrorKind::WriteZero.into())),
                Ok(k) => sent += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    remaining(deadline, secs, offset + sent as u64)?;
                }
                Err(e) => return Err(io("write", offset + sent as u64)(e)),
            }
        }
        offset += n as u64;
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(io("shutdown", offset))?;
    // The sink closes once it has checked everything: wait for that, so the
    // time measured is end to end.
    let mut sink = [0u8; 64];
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline, secs, offset)?))
            .map_err(io("socket", offset))?;
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                remaining(deadline, secs, offset)?;
            }
            // A sink that found a mismatch may reset; it reports the error.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return Err(io("read", offset)(e)),
        }
    }
    Ok(Transfer {
        bytes,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(seed: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        PatternStream::new(seed).fill(&mut v);
        v
    }

    #[test]
    fn pattern_is_independent_of_chunking() {
        let reference = whole(7, 1000);
        for sizes in [
            &[1usize, 2, 3, 5, 7, 11, 13][..],
            &[8, 8, 9],
            &[999, 1],
            &[0, 1000],
        ] {
            let mut s = PatternStream::new(7);
            let mut out = Vec::new();
            let mut total = 0;
            for &n in sizes.iter().cycle() {
                if total >= 1000 {
                    break;
                }
                let n = n.min(1000 - total);
                let mut buf = vec![0; n];
                s.fill(&mut buf);
                out.extend_from_slice(&buf);
                total += n;
            }
            assert_eq!(out, reference, "{sizes:?}");
        }
        assert_ne!(whole(7, 64), whole(8, 64));
        assert!(reference.iter().any(|&b| b != reference[0]));
    }

    fn run(send_bytes: u64, send_seed: u64, want_bytes: u64) -> Result<Transfer, TcpError> {
        let listener = sink_bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = std::thread::spawn(move || {
            sink_accept(&listener, want_bytes, 42, Duration::from_secs(10))
        });
        let _ = source(addr, send_bytes, send_seed, Duration::from_secs(10));
        sink.join().unwrap()
    }

    #[test]
    fn exact_transfer_passes() {
        let t = run(1_000_003, 42, 1_000_003).unwrap();
        assert_eq!(t.bytes, 1_000_003);
        assert!(t.mbit_per_sec() > 0.0);
        assert_eq!(run(0, 42, 0).unwrap().bytes, 0);
    }

    #[test]
    fn wrong_seed_reports_first_offset() {
        match run(4096, 43, 4096) {
            Err(TcpError::Mismatch { offset, .. }) => assert!(offset < 8),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_and_excess_fail() {
        assert!(matches!(
            run(100, 42, 200),
            Err(TcpError::Short {
                received: 100,
                expected: 200
            })
        ));
        assert!(matches!(
            run(300, 42, 200),
            Err(TcpError::Excess { expected: 200 })
        ));
    }

    #[test]
    fn paced_source_takes_its_time() {
        let listener = sink_bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = std::thread::spawn(move || {
            sink_accept(&listener, 1_000_000, 9, Duration::from_secs(10))
        });
        // 1 MB at 4 MB/s: the last chunk is due after about 0.23 s.
        let t = source_paced(addr, 1_000_000, 9, Duration::from_secs(10), Some(4_000_000)).unwrap();
        sink.join().unwrap().unwrap();
        assert!(t.elapsed >= Duration::from_millis(200), "{t:?}");
    }

    #[test]
    fn sink_times_out_without_client() {
        let listener = sink_bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let err = sink_accept(&listener, 10, 1, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, TcpError::AcceptTimeout { .. }), "{err}");
    }

    #[test]
    fn source_fails_when_nobody_listens() {
        let listener = sink_bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = source(addr, 10, 1, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, TcpError::Connect { .. }), "{err}");
    }
}
