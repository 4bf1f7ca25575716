//! Byte-exact UDP echo: `udp-probe` sends numbered datagrams of a
//! deterministic pattern, `udp-echo` verifies each and sends it back, and
//! the probe verifies every echoed byte and that every datagram came back.
//!
//! Both run inside lab namespaces as hidden warden-lab subcommands. UDP may
//! lose a datagram, so the probe keeps a bounded window in flight and sends
//! a datagram whose echo is late again, up to [`Probe::retries`] times; a
//! datagram that never comes back, or comes back changed, fails the check.
//!
//! Datagram layout (`size` bytes in all):
//! ```text
//! 0..4   magic  "wlu1" (data) or "wluF" (end: the probe is done)
//! 4..8   seq    sequence number, u32 big-endian (end: the count)
//! 8..    the pattern stream of seed + seq * golden (data only)
//! ```

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::tcp::PatternStream;

/// Magic of a data datagram.
const DATA: [u8; 4] = *b"wlu1";
/// Magic of the end datagram that tells the echo server to stop.
const END: [u8; 4] = *b"wluF";
/// Bytes before the pattern.
pub const HEADER: usize = 8;
/// How often the probe sends its end datagram (it may be lost too).
const END_REPEATS: u32 = 3;

/// Errors of a UDP exchange.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    #[error("datagram size {size} is out of range, expected {min}..=65507", min = HEADER)]
    Size { size: usize },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(
        "datagram {seq}: byte {offset} differs: expected {expected:#04x}, received {received:#04x}"
    )]
    Mismatch {
        seq: u32,
        offset: usize,
        expected: u8,
        received: u8,
    },
    #[error("datagram {seq}: {received} bytes, expected {expected}")]
    Length {
        seq: u32,
        received: usize,
        expected: usize,
    },
    #[error("datagram with sequence number {seq}, but only {count} were sent")]
    UnknownSeq { seq: u32, count: u32 },
    #[error("{lost} of {count} datagrams never came back after {tries} tries each (first: datagram {first}); {echoed} echoed")]
    Lost {
        lost: u32,
        count: u32,
        first: u32,
        tries: u32,
        echoed: u32,
    },
    #[error("{echoed} of {count} datagrams echoed within {secs} s")]
    Timeout { echoed: u32, count: u32, secs: u64 },
    #[error("{bad} datagrams arrived changed (first: {first}); {seen} of {count} arrived intact")]
    Corrupt {
        bad: u64,
        first: Box<UdpError>,
        seen: u32,
        count: u32,
    },
    #[error("the probe ended after {seen} of {count} datagrams arrived (first missing: {first_missing})")]
    Missing {
        seen: u32,
        count: u32,
        first_missing: u32,
    },
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> UdpError {
    move |source| UdpError::Io { what, source }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Checks a datagram size against the layout and the IPv4 UDP limit.
pub fn check_size(size: usize) -> Result<(), UdpError> {
    if (HEADER..=65507).contains(&size) {
        Ok(())
    } else {
        Err(UdpError::Size { size })
    }
}

/// The pattern seed of datagram `seq`: distinct per datagram and per run.
fn seed_of(seed: u64, seq: u32) -> u64 {
    seed.wrapping_add(u64::from(seq).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Writes data datagram `seq` into `out` (all of it).
pub fn fill_datagram(out: &mut [u8], seed: u64, seq: u32) {
    let (head, body) = out.split_at_mut(HEADER.min(out.len()));
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&DATA);
    h[4..].copy_from_slice(&seq.to_be_bytes());
    head.copy_from_slice(&h[..head.len()]);
    PatternStream::new(seed_of(seed, seq)).fill(body);
}

/// What a datagram says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data(u32),
    End,
    Foreign,
}

fn kind_of(d: &[u8]) -> Kind {
    let seq = d
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes);
    match (d.get(..4), seq) {
        (Some(m), Some(seq)) if m == DATA => Kind::Data(seq),
        (Some(m), Some(_)) if m == END => Kind::End,
        _ => Kind::Foreign,
    }
}

/// Verifies data datagram `got` against datagram `seq` of `seed`, using
/// `want` (at least `size` bytes) as scratch.
fn verify(
    got: &[u8],
    want: &mut [u8],
    size: usize,
    seed: u64,
    seq: u32,
    count: u32,
) -> Result<(), UdpError> {
    if seq >= count {
        return Err(UdpError::UnknownSeq { seq, count });
    }
    if got.len() != size {
        return Err(UdpError::Length {
            seq,
            received: got.len(),
            expected: size,
        });
    }
    let want = want.get_mut(..size).unwrap_or(&mut []);
    fill_datagram(want, seed, seq);
    match want.iter().zip(got).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(UdpError::Mismatch {
            seq,
            offset: i,
            expected: want.get(i).copied().unwrap_or(0),
            received: got.get(i).copied().unwrap_or(0),
        }),
    }
}

/// What the echo server saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echoed {
    /// Distinct datagrams that arrived intact.
    pub datagrams: u32,
    /// Datagrams that arrived again (the probe resent them).
    pub duplicates: u64,
    /// Datagrams not of this exchange (ignored).
    pub foreign: u64,
}

/// Binds the echo server; the caller reports readiness, then calls
/// [`echo_serve`].
pub fn echo_bind(listen: SocketAddr) -> Result<UdpSocket, UdpError> {
    UdpSocket::bind(listen).map_err(|source| UdpError::Bind {
        addr: listen,
        source,
    })
}

/// Sends every datagram back to where it came from, verifying it on the
/// way, until the probe's end datagram arrives (or `timeout` passes).
/// Succeeds when all `count` datagrams arrived intact.
pub fn echo_serve(
    socket: &UdpSocket,
    count: u32,
    size: usize,
    seed: u64,
    timeout: Duration,
) -> Result<Echoed, UdpError> {
    check_size(size)?;
    let deadline = Instant::now() + timeout;
    let mut seen = vec![false; usize::try_from(count).unwrap_or(usize::MAX)];
    let mut out = Echoed {
        datagrams: 0,
        duplicates: 0,
        foreign: 0,
    };
    let mut bad = 0u64;
    let mut first_bad = None;
    let mut buf = vec![0u8; 65536];
    let mut want = vec![0u8; size];
    let ended = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        socket
            .set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .map_err(io("socket"))?;
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => continue,
            // An ICMP error for an earlier echo: nothing to do about it here.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(io("receive")(e)),
        };
        let got = buf.get(..n).unwrap_or(&[]);
        match kind_of(got) {
            Kind::End => break true,
            Kind::Foreign => {
                out.foreign += 1;
                continue;
            }
            Kind::Data(seq) => {
                match verify(got, &mut want, size, seed, seq, count) {
                    Ok(()) => match seen.get_mut(seq as usize) {
                        Some(s) if *s => out.duplicates += 1,
                        Some(s) => {
                            *s = true;
                            out.datagrams += 1;
                        }
                        None => {}
                    },
                    Err(e) => {
                        bad += 1;
                        first_bad.get_or_insert(e);
                    }
                }
                // Echo whatever arrived: the probe judges what comes back.
                match socket.send_to(got, from) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // A full queue is loss, which the probe recovers from.
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(io("send")(e)),
                }
            }
        }
    };
    if let Some(first) = first_bad {
        return Err(UdpError::Corrupt {
            bad,
            first: Box::new(first),
            seen: out.datagrams,
            count,
        });
    }
    if out.datagrams < count {
        let first_missing = seen.iter().position(|s| !s).unwrap_or(0);
        if !ended {
            return Err(UdpError::Timeout {
                echoed: out.datagrams,
                count,
                secs: timeout.as_secs(),
            });
        }
        return Err(UdpError::Missing {
            seen: out.datagrams,
            count,
            first_missing: u32::try_from(first_missing).unwrap_or(u32::MAX),
        });
    }
    Ok(out)
}

/// How the probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub count: u32,
    pub size: usize,
    pub seed: u64,
    /// Datagrams in flight at most.
    pub window: u32,
    /// Times a datagram is sent again when its echo is late.
    pub retries: u32,
    /// How long an echo may take before the datagram is sent again.
    pub retry_after: Duration,
    /// The whole exchange must end within this.
    pub timeout: Duration,
}

impl Probe {
    /// `count` datagrams of `size` bytes with the default window and
    /// retries.
    pub fn new(count: u32, size: usize, seed: u64, timeout: Duration) -> Self {
        Self {
            count,
            size,
            seed,
            window: 64,
            retries: 4,
            retry_after: Duration::from_millis(300),
            timeout,
        }
    }
}

/// What a finished exchange measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exchange {
    pub count: u32,
    pub size: usize,
    /// Datagrams sent again.
    pub resent: u64,
    /// Echoes that arrived for a datagram already echoed.
    pub duplicates: u64,
    pub elapsed: Duration,
    /// Longest time from the last send of a datagram to its echo.
    pub max_rtt: Duration,
}

/// Per-datagram state of the probe.
#[derive(Debug, Clone, Copy)]
struct Slot {
    sent_at: Instant,
    tries: u32,
    done: bool,
}

/// Sends the datagrams to `addr` and verifies every echo; ends with the
/// end datagram so the echo server stops (also on failure).
pub fn probe(addr: SocketAddr, p: &Probe) -> Result<Exchange, UdpError> {
    check_size(p.size)?;
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(|source| UdpError::Bind {
        addr: local,
        source,
    })?;
    socket.connect(addr).map_err(io("connect"))?;
    let result = exchange(&socket, p);
    let mut end = [0u8; HEADER];
    end[..4].copy_from_slice(&END);
    end[4..].copy_from_slice(&p.count.to_be_bytes());
    for _ in 0..END_REPEATS {
        let _ = socket.send(&end);
        std::thread::sleep(Duration::from_millis(5));
    }
    result
}

fn exchange(socket: &UdpSocket, p: &Probe) -> Result<Exchange, UdpError> {
    let start = Instant::now();
    let deadline = start + p.timeout;
    let count = p.count;
    let window = p.window.max(1);
    let mut slots: Vec<Option<Slot>> = vec![None; usize::try_from(count).unwrap_or(usize::MAX)];
    let mut tx = vec![0u8; p.size];
    let mut want = vec![0u8; p.size];
    let mut rx = vec![0u8; 65536];
    let mut out = Exchange {
        count,
        size: p.size,
        resent: 0,
        duplicates: 0,
        elapsed: Duration::ZERO,
        max_rtt: Duration::ZERO,
    };
    // Datagrams below `base` are all echoed; `next` is the first never sent.
    let mut base = 0u32;
    let mut next = 0u32;
    let mut echoed = 0u32;
    let send = |tx: &mut [u8], seq: u32| -> Result<(), UdpError> {
        fill_datagram(tx, p.seed, seq);
        match socket.send(tx) {
            Ok(_) => Ok(()),
            // Lost on the way out: the retry sends it again.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::Interrupted | ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(io("send")(e)),
        }
    };
    while echoed < count {
        let now = Instant::now();
        if now >= deadline {
            return Err(UdpError::Timeout {
                echoed,
                count,
                secs: p.timeout.as_secs(),
            });
        }
        while next < count && next - base < window {
            send(&mut tx, next)?;
            if let Some(s) = slots.get_mut(next as usize) {
                *s = Some(Slot {
                    sent_at: Instant::now(),
                    tries: 1,
                    done: false,
                });
            }
            next += 1;
        }
        // Late echoes: send again, or give up on the datagram once its
        // last try is overdue too.
        let mut lost = 0u32;
        let mut first_lost = None;
        let mut waiting = false;
        for seq in base..next {
            let Some(Some(slot)) = slots.get_mut(seq as usize) else {
                continue;
            };
            if slot.done {
                continue;
            }
            if now.duration_since(slot.sent_at) < p.retry_after {
                waiting = true;
                continue;
            }
            if slot.tries > p.retries {
                lost += 1;
                first_lost.get_or_insert(seq);
                continue;
            }
            slot.tries += 1;
            slot.sent_at = now;
            out.resent += 1;
            waiting = true;
            send(&mut tx, seq)?;
        }
        if let (Some(first), false) = (first_lost, waiting) {
            return Err(UdpError::Lost {
                lost,
                count,
                first,
                tries: p.retries + 1,
                echoed,
            });
        }
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(20))
            .max(Duration::from_millis(1));
        socket.set_read_timeout(Some(wait)).map_err(io("socket"))?;
        // Take every echo that is waiting, then go round again.
        loop {
            let n = match socket.recv(&mut rx) {
                Ok(n) => n,
                Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => break,
                // ICMP port unreachable for an earlier datagram (the echo
                // server not there yet, or a restart): retries cover it.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
                Err(e) => return Err(io("receive")(e)),
            };
            let got = rx.get(..n).unwrap_or(&[]);
            let Kind::Data(seq) = kind_of(got) else {
                continue;
            };
            verify(got, &mut want, p.size, p.seed, seq, count)?;
            match slots.get_mut(seq as usize) {
                Some(Some(slot)) if !slot.done => {
                    slot.done = true;
                    echoed += 1;
                    out.max_rtt = out.max_rtt.max(slot.sent_at.elapsed());
                }
                Some(Some(_)) => out.duplicates += 1,
                // Echo of a datagram not sent yet: cannot be ours.
                _ => return Err(UdpError::UnknownSeq { seq, count: next }),
            }
            socket
                .set_read_timeout(Some(Duration::from_micros(100)))
                .map_err(io("socket"))?;
        }
        while base < next
            && slots
                .get(base as usize)
                .copied()
                .flatten()
                .is_some_and(|s| s.done)
        {
            base += 1;
        }
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn datagrams_carry_their_sequence_and_differ() {
        let mut a = vec![0; 64];
        let mut b = vec![0; 64];
        fill_datagram(&mut a, 7, 0);
        fill_datagram(&mut b, 7, 1);
        assert_eq!(kind_of(&a), Kind::Data(0));
        assert_eq!(kind_of(&b), Kind::Data(1));
        assert_ne!(a[HEADER..], b[HEADER..]);
        let mut c = vec![0; 64];
        fill_datagram(&mut c, 8, 0);
        assert_ne!(a[HEADER..], c[HEADER..]);
        assert_eq!(kind_of(b"wluF\0\0\0\x01"), Kind::End);
        assert_eq!(kind_of(b"wlu1"), Kind::Foreign);
        assert_eq!(kind_of(b""), Kind::Foreign);
        let mut want = vec![0; 64];
        verify(&a, &mut want, 64, 7, 0, 2).unwrap();
        assert!(matches!(
            verify(&a, &mut want, 64, 8, 0, 2),
            Err(UdpError::Mismatch { seq: 0, offset, .. }) if offset >= HEADER
        ));
        assert!(matches!(
            verify(&a[..63], &mut want, 64, 7, 0, 2),
            Err(UdpError::Length { received: 63, .. })
        ));
        assert!(matches!(
            verify(&b, &mut want, 64, 7, 1, 1),
            Err(UdpError::UnknownSeq { seq: 1, count: 1 })
        ));
        assert!(check_size(7).is_err() && check_size(65508).is_err());
        check_size(8).unwrap();
    }

    /// Runs the real echo server and the probe over loopback.
    fn exchange_with_echo(
        p: Probe,
        echo_seed: u64,
    ) -> (Result<Exchange, UdpError>, Result<Echoed, UdpError>) {
        let sock = echo_bind(loopback()).unwrap();
        let addr = sock.local_addr().unwrap();
        let (count, size) = (p.count, p.size);
        let echo = std::thread::spawn(move || echo_serve(&sock, count, size, echo_seed, T));
        let probed = probe(addr, &p);
        (probed, echo.join().unwrap())
    }

    #[test]
    fn exact_exchange_passes_both_sides() {
        let p = Probe::new(500, 1000, 42, T);
        let (probed, echoed) = exchange_with_echo(p, 42);
        let x = probed.unwrap();
        assert_eq!((x.count, x.size), (500, 1000));
        let e = echoed.unwrap();
        assert_eq!(e.datagrams, 500);
        assert_eq!(e.duplicates, x.resent);
        let (probed, _) = exchange_with_echo(Probe::new(1, 65507, 1, T), 1);
        probed.unwrap();
    }

    #[test]
    fn echo_server_reports_datagrams_not_of_its_seed() {
        let (probed, echoed) = exchange_with_echo(Probe::new(20, 100, 42, T), 43);
        // The echo sends back what it got, so the probe is content...
        probed.unwrap();
        // ...but the server says the datagrams that reached it were wrong.
        match echoed {
            Err(UdpError::Corrupt { bad: 20, first, .. }) => {
                assert!(
                    matches!(*first, UdpError::Mismatch { seq: 0, .. }),
                    "{first}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// A misbehaving echo: `act(n, datagram)` returns what to send back for
    /// the n-th datagram received (None: drop it); ends on the end datagram.
    fn fake_echo(
        act: impl Fn(u64, &mut Vec<u8>) -> bool + Send + 'static,
    ) -> (SocketAddr, std::thread::JoinHandle<u64>) {
        let sock = UdpSocket::bind(loopback()).unwrap();
        let addr = sock.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            sock.set_read_timeout(Some(T)).unwrap();
            let mut buf = vec![0u8; 65536];
            let mut n = 0;
            while let Ok((len, from)) = sock.recv_from(&mut buf) {
                let mut d = buf[..len].to_vec();
                if kind_of(&d) == Kind::End {
                    break;
                }
                if act(n, &mut d) {
                    sock.send_to(&d, from).unwrap();
                }
                n += 1;
            }
            n
        });
        (addr, h)
    }

    #[test]
    fn lost_echoes_are_sent_again() {
        // Drops every third datagram the first time it arrives.
        let (addr, h) = fake_echo(|n, _| n % 3 != 0);
        let mut p = Probe::new(200, 300, 5, T);
        p.retry_after = Duration::from_millis(50);
        let x = probe(addr, &p).unwrap();
        assert!(x.resent > 0, "{x:?}");
        // Every datagram sent arrived: the first tries and the resends.
        assert_eq!(h.join().unwrap(), 200 + x.resent);
    }

    #[test]
    fn changed_byte_fails_with_its_position() {
        let (addr, h) = fake_echo(|n, d| {
            if n == 10 {
                d[500] ^= 0x40;
            }
            true
        });
        let err = probe(addr, &Probe::new(50, 1000, 5, T)).unwrap_err();
        assert!(
            matches!(
                err,
                UdpError::Mismatch {
                    seq: 10,
                    offset: 500,
                    ..
                }
            ),
            "{err}"
        );
        h.join().unwrap();
        // A shortened datagram is reported as such.
        let (addr, h) = fake_echo(|n, d| {
            if n == 3 {
                d.truncate(999);
            }
            true
        });
        let err = probe(addr, &Probe::new(50, 1000, 5, T)).unwrap_err();
        assert!(
            matches!(
                err,
                UdpError::Length {
                    seq: 3,
                    received: 999,
                    ..
                }
            ),
            "{err}"
        );
        h.join().unwrap();
    }

    #[test]
    fn datagram_that_never_returns_is_reported_lost() {
        // Never echoes datagram 7, however often it comes.
        let (addr, h) = fake_echo(|_, d| kind_of(d) != Kind::Data(7));
        let mut p = Probe::new(30, 100, 5, T);
        p.retry_after = Duration::from_millis(30);
        let err = probe(addr, &p).unwrap_err();
        assert!(
            matches!(
                err,
                UdpError::Lost {
                    lost: 1,
                    first: 7,
                    tries: 5,
                    ..
                }
            ),
            "{err}"
        );
        // It was sent 1 + retries times (others may have been resent too).
        assert!(h.join().unwrap() >= 30 + 4);
    }

    #[test]
    fn nobody_listening_fails_within_the_retries() {
        let sock = UdpSocket::bind(loopback()).unwrap();
        let addr = sock.local_addr().unwrap();
        drop(sock);
        let mut p = Probe::new(5, 100, 5, T);
        p.retry_after = Duration::from_millis(20);
        let start = Instant::now();
        let err = probe(addr, &p).unwrap_err();
        assert!(
            matches!(
                err,
                UdpError::Lost {
                    lost: 5,
                    echoed: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn echo_server_times_out_and_says_how_far_it_got() {
        let sock = echo_bind(loopback()).unwrap();
        let err = echo_serve(&sock, 3, 100, 1, Duration::from_millis(200)).unwrap_err();
        assert!(
            matches!(
                err,
                UdpError::Timeout {
                    echoed: 0,
                    count: 3,
                    ..
                }
            ),
            "{err}"
        );
    }
}
