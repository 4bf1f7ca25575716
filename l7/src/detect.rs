//! Protocol detection from the first bytes of a flow, as NeuVector's
//! parsers drop out one by one: each candidate says yes, no, or "maybe,
//! show me more"; the first yes wins, all no is [`Proto::Unknown`], and
//! after [`DETECT_MAX`] client bytes a maybe is unknown too.
//!
//! | protocol | from | bytes |
//! | --- | --- | --- |
//! | ssh | either side | `SSH-` and a digit (servers speak first: the server's banner decides even before the client says anything) |
//! | http | client | a known method (exact case) and a space: `GET `, `POST `, ... (a lowercase `get ` is not HTTP here) |
//! | tls | client | a handshake record `0x16 0x03 0x00..=0x04`, two length bytes, handshake type 1 (ClientHello) |
//! | dns | client, destination port 53 | UDP: a datagram that [`crate::dns::parse_query`] accepts; TCP: a length prefix of at least 17 and a header with QR clear, opcode QUERY, QDCOUNT 1 |
//!
//! Server bytes other than an SSH banner decide [`Proto::Unknown`] (none
//! of http, tls, dns lets the server speak first). The decision is
//! sticky.

use crate::dns;
use crate::http::Method;

/// Client bytes after which an undecided flow is [`Proto::Unknown`].
pub const DETECT_MAX: usize = 16;

/// An application protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Proto {
    Http,
    Tls,
    Dns,
    Ssh,
    Unknown,
}

impl Proto {
    pub const fn as_str(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Tls => "tls",
            Proto::Dns => "dns",
            Proto::Ssh => "ssh",
            Proto::Unknown => "unknown",
        }
    }
}

/// The flow's transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

/// A detection result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Detection {
    /// Undecided: feed more bytes.
    NeedMore,
    Known(Proto),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    Yes,
    Maybe,
    No,
}

/// Does `seen` start with `pat`, could it still, or not?
fn fit_prefix(seen: &[u8], pat: &[u8]) -> Fit {
    let n = seen.len().min(pat.len());
    if seen[..n] != pat[..n] {
        Fit::No
    } else if seen.len() >= pat.len() {
        Fit::Yes
    } else {
        Fit::Maybe
    }
}

fn any(fits: impl Iterator<Item = Fit>) -> Fit {
    let mut r = Fit::No;
    for f in fits {
        match f {
            Fit::Yes => return Fit::Yes,
            Fit::Maybe => r = Fit::Maybe,
            Fit::No => {}
        }
    }
    r
}

fn http(b: &[u8]) -> Fit {
    any(Method::ALL.iter().map(|m| {
        let tok = m.as_bytes();
        match fit_prefix(b, tok) {
            Fit::Yes => match b.get(tok.len()) {
                Some(b' ') => Fit::Yes,
                Some(_) => Fit::No,
                None => Fit::Maybe,
            },
            f => f,
        }
    }))
}

fn ssh(b: &[u8]) -> Fit {
    match fit_prefix(b, b"SSH-") {
        Fit::Yes => match b.get(4) {
            Some(d) if d.is_ascii_digit() => Fit::Yes,
            Some(_) => Fit::No,
            None => Fit::Maybe,
        },
        f => f,
    }
}

fn tls(b: &[u8]) -> Fit {
    let checks: [fn(u8) -> bool; 6] = [
        |x| x == 0x16,
        |x| x == 0x03,
        |x| x <= 0x04,
        |_| true,
        |_| true,
        |x| x == 0x01,
    ];
    for (i, check) in checks.iter().enumerate() {
        match b.get(i) {
            None => return Fit::Maybe,
            Some(&x) if !check(x) => return Fit::No,
            Some(_) => {}
        }
    }
    Fit::Yes
}

fn dns_tcp(b: &[u8]) -> Fit {
    // length(2) id(2) flags(2) qd(2)
    let checks: [fn(&[u8]) -> bool; 4] = [
        |b| u16::from_be_bytes([b[0], b[1]]) >= 17,
        |b| b[4] & 0xf8 == 0, // QR clear, opcode 0
        |b| b[6] == 0,
        |b| b[7] == 1,
    ];
    let need = [2, 5, 7, 8];
    for (check, &n) in checks.iter().zip(&need) {
        if b.len() < n {
            return Fit::Maybe;
        }
        if !check(b) {
            return Fit::No;
        }
    }
    Fit::Yes
}

/// Per-flow detector: 28 bytes, `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detector {
    transport: Transport,
    dst_port: u16,
    client: [u8; DETECT_MAX],
    clen: u8,
    server: [u8; 5],
    slen: u8,
    decided: Option<Proto>,
}

impl Detector {
    /// A detector for a flow toward `dst_port` over `transport`.
    pub const fn new(transport: Transport, dst_port: u16) -> Self {
        Detector {
            transport,
            dst_port,
            client: [0; DETECT_MAX],
            clen: 0,
            server: [0; 5],
            slen: 0,
            decided: None,
        }
    }

    /// The decision so far.
    pub fn result(&self) -> Detection {
        match self.decided {
            Some(p) => Detection::Known(p),
            None => Detection::NeedMore,
        }
    }

    fn decide(&mut self, p: Proto) -> Detection {
        self.decided = Some(p);
        Detection::Known(p)
    }

    /// Client-to-server bytes, in order (for UDP: each datagram's payload;
    /// the first decides).
    pub fn feed_client(&mut self, bytes: &[u8]) -> Detection {
        if self.decided.is_some() || bytes.is_empty() {
            return self.result();
        }
        if self.transport == Transport::Udp {
            let mut name = dns::NameBuf::new();
            let p = if self.dst_port == 53 && dns::parse_query(bytes, &mut name).is_ok() {
                Proto::Dns
            } else {
                Proto::Unknown
            };
            return self.decide(p);
        }
        let have = self.clen as usize;
        let take = bytes.len().min(DETECT_MAX - have);
        self.client[have..have + take].copy_from_slice(&bytes[..take]);
        self.clen += take as u8;
        self.judge()
    }

    /// Server-to-client bytes, in order.
    pub fn feed_server(&mut self, bytes: &[u8]) -> Detection {
        if self.decided.is_some() || bytes.is_empty() {
            return self.result();
        }
        let have = self.slen as usize;
        let take = bytes.len().min(self.server.len() - have);
        self.server[have..have + take].copy_from_slice(&bytes[..take]);
        self.slen += take as u8;
        self.judge()
    }

    fn judge(&mut self) -> Detection {
        let server = &self.server[..self.slen as usize];
        let client = &self.client[..self.clen as usize];
        if !server.is_empty() {
            match ssh(server) {
                Fit::Yes => return self.decide(Proto::Ssh),
                Fit::No if client.is_empty() => return self.decide(Proto::Unknown),
                _ => {}
            }
        }
        if client.is_empty() {
            return Detection::NeedMore;
        }
        let dns = if self.dst_port == 53 {
            dns_tcp(client)
        } else {
            Fit::No
        };
        let fits = [
            (Proto::Http, http(client)),
            (Proto::Tls, tls(client)),
            (Proto::Ssh, ssh(client)),
            (Proto::Dns, dns),
        ];
        let mut maybe = false;
        for (p, f) in fits {
            match f {
                Fit::Yes => return self.decide(p),
                Fit::Maybe => maybe = true,
                Fit::No => {}
            }
        }
        if maybe && client.len() < DETECT_MAX {
            Detection::NeedMore
        } else {
            self.decide(Proto::Unknown)
        }
    }
}

/// One-shot detection over the first bytes of each side.
pub fn detect(transport: Transport, dst_port: u16, client: &[u8], server: &[u8]) -> Detection {
    let mut d = Detector::new(transport, dst_port);
    d.feed_server(server);
    d.feed_client(client)
}

#[cfg(test)]
mod tests;
