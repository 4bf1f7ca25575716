//! The TLS ClientHello at the start of a client's stream: server name
//! (SNI), ALPN list, and whether it is encrypted (ECH), across TCP
//! segments and across TLS records.
//!
//! ```text
//! engine, per in-order segment of the client's stream:
//!   let (used, ev) = flow.tls.feed(&mut hello_buf, segment);
//!   match ev {
//!       Event::NeedMore { buffered } => {}          // hold or pass per policy
//!       Event::Hello(h) => match h.server_name() { Ok(name) => /* match rules */, Err(reason) => /* deny on rules naming servers */ }
//!       Event::Done => {}                           // after the hello: opaque
//!       Event::Deny(reason) => { /* reset */ }
//!   }
//! ```
//!
//! Records are read one by one (`0x16`, version `0x03 0x00..=0x04`,
//! length 1..=16384); their payloads are concatenated into the handshake
//! message, which must be a ClientHello (type 1) of at most [`HELLO_MAX`]
//! bytes. A ClientHello that arrives whole in one record of one segment is
//! parsed in place; otherwise it is assembled in the caller's [`HelloBuf`].
//! The hello is parsed strictly: every length must fit its parent, nothing
//! may trail the extensions, `server_name` and ALPN appear at most once,
//! the server name list holds at most one `host_name`, a name is 1..=255
//! letters, digits, `-`, `_` and `.` (lowercased into the buffer).

use core::fmt;

/// Largest ClientHello handshake message (with its 4-byte header).
pub const HELLO_MAX: usize = 16384;

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_ECH: u16 = 0xfe0d;
/// The draft "encrypted_server_name" (ESNI) extension: treated as ECH.
const EXT_ESNI: u16 = 0xffce;

/// Why a ClientHello is denied (or, for [`Reason::NoSni`] and
/// [`Reason::Ech`], why it cannot satisfy a rule that names servers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// The first record is not a handshake record.
    NotHandshake,
    /// A record version other than 0x0300..=0x0304.
    BadRecordVersion,
    /// A record of length 0 or above 2^14.
    BadRecordLength,
    /// The first handshake message is not a ClientHello.
    NotClientHello,
    /// A ClientHello longer than [`HELLO_MAX`].
    TooLarge,
    /// A length that does not fit, or bytes after the extensions.
    Malformed,
    /// Two server names, or two server_name extensions.
    MultipleSni,
    /// A server name that is empty, too long or has invalid characters.
    InvalidSni,
    /// Two ALPN extensions, or an empty protocol name.
    InvalidAlpn,
    /// No server name.
    NoSni,
    /// Encrypted ClientHello (or ESNI): the real name is hidden.
    Ech,
}

impl Reason {
    /// Every reason, in `repr` order.
    pub const ALL: [Reason; 11] = [
        Reason::NotHandshake,
        Reason::BadRecordVersion,
        Reason::BadRecordLength,
        Reason::NotClientHello,
        Reason::TooLarge,
        Reason::Malformed,
        Reason::MultipleSni,
        Reason::InvalidSni,
        Reason::InvalidAlpn,
        Reason::NoSni,
        Reason::Ech,
    ];

    /// A stable snake_case name (counters, logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::NotHandshake => "tls_not_handshake",
            Reason::BadRecordVersion => "tls_bad_record_version",
            Reason::BadRecordLength => "tls_bad_record_length",
            Reason::NotClientHello => "tls_not_client_hello",
            Reason::TooLarge => "tls_hello_too_large",
            Reason::Malformed => "tls_malformed",
            Reason::MultipleSni => "tls_multiple_sni",
            Reason::InvalidSni => "tls_invalid_sni",
            Reason::InvalidAlpn => "tls_invalid_alpn",
            Reason::NoSni => "tls_no_sni",
            Reason::Ech => "tls_ech",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The raw ALPN `protocol_name_list` (already validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Alpn<'a>(&'a [u8]);

impl<'a> Alpn<'a> {
    /// A `protocol_name_list` in wire form (each name a length byte and
    /// 1 to 255 bytes), as a ClientHello carries it; `None` when the
    /// lengths do not add up or a name is empty. For callers that build
    /// the list themselves (tests, the policy crate's fuzzing).
    pub fn from_wire(list: &'a [u8]) -> Option<Alpn<'a>> {
        let mut rest = list;
        while let Some((&n, tail)) = rest.split_first() {
            if n == 0 || tail.len() < n as usize {
                return None;
            }
            rest = &tail[n as usize..];
        }
        Some(Alpn(list))
    }

    /// The protocol names, in the client's order.
    pub fn iter(&self) -> AlpnIter<'a> {
        AlpnIter(self.0)
    }

    /// Whether the client offers `proto` (exact bytes, e.g. `b"h2"`).
    pub fn contains(&self, proto: &[u8]) -> bool {
        self.iter().any(|p| p == proto)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Iterator over ALPN protocol names.
#[derive(Clone, Debug)]
pub struct AlpnIter<'a>(&'a [u8]);

impl<'a> Iterator for AlpnIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let (&n, rest) = self.0.split_first()?;
        let name = rest.get(..n as usize)?;
        self.0 = &rest[n as usize..];
        Some(name)
    }
}

/// What a ClientHello says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// `legacy_version` (0x0303 for TLS 1.2 and 1.3).
    pub legacy_version: u16,
    /// The `host_name`, lowercased; `None` without server_name.
    pub sni: Option<&'a [u8]>,
    pub alpn: Alpn<'a>,
    /// An encrypted_client_hello (0xfe0d) or ESNI (0xffce) extension.
    pub ech: bool,
}

impl<'a> ClientHello<'a> {
    /// The name to match a rule that names servers: denied with
    /// [`Reason::Ech`] when the hello is encrypted (the outer SNI is a
    /// decoy) and [`Reason::NoSni`] when there is none.
    pub fn server_name(&self) -> Result<&'a [u8], Reason> {
        if self.ech {
            return Err(Reason::Ech);
        }
        self.sni.ok_or(Reason::NoSni)
    }
}

/// What one [`HelloStream::feed`] call found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// All input taken; `buffered` bytes of the handshake message held.
    NeedMore { buffered: usize },
    /// The ClientHello is complete.
    Hello(ClientHello<'a>),
    /// The hello was already seen: these bytes are past it.
    Done,
    /// Not a well-formed ClientHello: reset. Sticky.
    Deny(Reason),
}

/// The caller-owned buffer for a ClientHello spread over records or
/// segments (16 KiB), and the lowercased server name.
pub struct HelloBuf {
    msg: [u8; HELLO_MAX],
    len: usize,
    sni: [u8; 256],
}

impl HelloBuf {
    pub const fn new() -> Self {
        HelloBuf {
            msg: [0; HELLO_MAX],
            len: 0,
            sni: [0; 256],
        }
    }

    /// Bytes of a partial handshake message held.
    pub fn buffered(&self) -> usize {
        self.len
    }
}

impl Default for HelloBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HelloBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelloBuf")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header { got: u8 },
    Body { rem: u16 },
    Done,
    Failed(Reason),
}

/// Per-flow state of the ClientHello reader: 12 bytes, `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloStream {
    state: State,
    hdr: [u8; 5],
}

impl Default for HelloStream {
    fn default() -> Self {
        Self::new()
    }
}

impl HelloStream {
    pub const fn new() -> Self {
        HelloStream {
            state: State::Header { got: 0 },
            hdr: [0; 5],
        }
    }

    /// Feed the next in-order bytes of the client's stream. Returns the
    /// bytes consumed (all of them, except with [`Event::Hello`]: up to the
    /// end of the ClientHello) and what they were.
    pub fn feed<'a>(&mut self, buf: &'a mut HelloBuf, input: &'a [u8]) -> (usize, Event<'a>) {
        match self.state {
            State::Failed(r) => return (input.len(), Event::Deny(r)),
            State::Done => return (input.len(), Event::Done),
            _ => {}
        }
        let (used, found) = match self.advance(buf, input) {
            Err(r) => {
                buf.len = 0;
                self.state = State::Failed(r);
                return (input.len(), Event::Deny(r));
            }
            Ok((i, None)) => return (i, Event::NeedMore { buffered: buf.len }),
            Ok((i, Some(found))) => (i, found),
        };
        self.state = State::Done;
        let HelloBuf { msg, len, sni } = buf;
        *len = 0;
        let bytes = match found {
            Found::InInput(at, n) => &input[at..at + n],
            Found::InBuf(n) => &msg[..n],
        };
        match parse_hello(bytes, sni) {
            Ok(h) => (used, Event::Hello(h)),
            Err(r) => {
                self.state = State::Failed(r);
                (input.len(), Event::Deny(r))
            }
        }
    }

    /// Runs the record reader over `input`: the bytes consumed, and where
    /// the complete hello is, if it is.
    fn advance(
        &mut self,
        buf: &mut HelloBuf,
        input: &[u8],
    ) -> Result<(usize, Option<Found>), Reason> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Failed(r) => return Err(r),
                State::Done => return Ok((i, None)),
                State::Header { got } => {
                    self.hdr[got as usize] = input[i];
                    i += 1;
                    let got = got + 1;
                    match got {
                        1 if self.hdr[0] != 22 => return Err(Reason::NotHandshake),
                        2 if self.hdr[1] != 3 => return Err(Reason::BadRecordVersion),
                        3 if self.hdr[2] > 4 => return Err(Reason::BadRecordVersion),
                        _ => {}
                    }
                    self.state = if got == 5 {
                        let len = u16::from_be_bytes([self.hdr[3], self.hdr[4]]);
                        if len == 0 || len > 16384 {
                            return Err(Reason::BadRecordLength);
                        }
                        State::Body { rem: len }
                    } else {
                        State::Header { got }
                    };
                }
                State::Body { rem } => {
                    let avail = &input[i..input.len().min(i + rem as usize)];
                    // Fast path: the whole hello in this record and segment.
                    if buf.len == 0 && avail.len() >= 4 && avail[0] == 1 {
                        let need = 4 + u24(&avail[1..4]);
                        if need <= avail.len() {
                            return Ok((i + need, Some(Found::InInput(i, need))));
                        }
                    }
                    let take = avail.len().min(HELLO_MAX - buf.len);
                    buf.msg[buf.len..buf.len + take].copy_from_slice(&avail[..take]);
                    buf.len += take;
                    i += take;
                    let rem = rem - take as u16;
                    self.state = if rem == 0 {
                        State::Header { got: 0 }
                    } else {
                        State::Body { rem }
                    };
                    if buf.msg[0] != 1 {
                        return Err(Reason::NotClientHello);
                    }
                    if buf.len >= 4 {
                        let need = 4 + u24(&buf.msg[1..4]);
                        if need > HELLO_MAX {
                            return Err(Reason::TooLarge);
                        }
                        if buf.len >= need {
                            // Bytes of this record past the hello were
                            // copied too: they are not consumed.
                            return Ok((i - (buf.len - need), Some(Found::InBuf(need))));
                        }
                    }
                }
            }
        }
        Ok((i, None))
    }
}

/// Where a complete hello is.
#[derive(Clone, Copy, Debug)]
enum Found {
    InInput(usize, usize),
    InBuf(usize),
}

fn u24(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

/// A bounds-checked reader over a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Reason> {
        if n > self.0.len() {
            return Err(Reason::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Reason> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Reason> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Result<&'a [u8], Reason> {
        let n = self.u8()?;
        self.take(n as usize)
    }
    fn vec16(&mut self) -> Result<&'a [u8], Reason> {
        let n = self.u16()?;
        self.take(n as usize)
    }
}

/// Parses one complete ClientHello handshake message (with its 4-byte
/// header). The server name is lowercased into `sni_buf`. Pure: also
/// usable on its own, for tests and the control path.
pub fn parse_hello<'a>(
    msg: &'a [u8],
    sni_buf: &'a mut [u8; 256],
) -> Result<ClientHello<'a>, Reason> {
    let mut r = Reader(msg);
    if r.u8()? != 1 {
        return Err(Reason::NotClientHello);
    }
    let len = u24(r.take(3)?);
    if len != r.0.len() {
        return Err(Reason::Malformed);
    }
    let legacy_version = r.u16()?;
    r.take(32)?; // random
    let sid = r.vec8()?;
    if sid.len() > 32 {
        return Err(Reason::Malformed);
    }
    let suites = r.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(Reason::Malformed);
    }
    if r.vec8()?.is_empty() {
        return Err(Reason::Malformed); // compression methods
    }
    let mut hello = ClientHello {
        legacy_version,
        sni: None,
        alpn: Alpn(&[]),
        ech: false,
    };
    if r.0.is_empty() {
        return Ok(hello); // no extensions
    }
    let mut exts = Reader(r.vec16()?);
    if !r.0.is_empty() {
        return Err(Reason::Malformed);
    }
    let mut seen_sni = false;
    let mut seen_alpn = false;
    let mut sni: Option<&'a [u8]> = None;
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let data = exts.vec16()?;
        match ty {
            EXT_SERVER_NAME => {
                if seen_sni {
                    return Err(Reason::MultipleSni);
                }
                seen_sni = true;
                let mut d = Reader(data);
                let mut list = Reader(d.vec16()?);
                if !d.0.is_empty() || list.0.is_empty() {
                    return Err(Reason::Malformed);
                }
                while !list.0.is_empty() {
                    let name_type = list.u8()?;
                    let name = list.vec16()?;
                    if name_type != 0 {
                        continue;
                    }
                    if sni.is_some() {
                        return Err(Reason::MultipleSni);
                    }
                    if name.is_empty()
                        || name.len() > 255
                        || name.last() == Some(&b'.')
                        || !name
                            .iter()
                            .all(|&b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    {
                        return Err(Reason::InvalidSni);
                    }
                    sni = Some(name);
                }
            }
            EXT_ALPN => {
                if seen_alpn {
                    return Err(Reason::InvalidAlpn);
                }
                seen_alpn = true;
                let mut d = Reader(data);
                let list = d.vec16()?;
                if !d.0.is_empty() || list.is_empty() {
                    return Err(Reason::Malformed);
                }
                let mut l = Reader(list);
                while !l.0.is_empty() {
                    if l.vec8()?.is_empty() {
                        return Err(Reason::InvalidAlpn);
                    }
                }
                hello.alpn = Alpn(list);
            }
            EXT_ECH | EXT_ESNI => hello.ech = true,
            _ => {}
        }
    }
    if let Some(name) = sni {
        hello.sni = Some(crate::lower_into(name, sni_buf).ok_or(Reason::InvalidSni)?);
    }
    Ok(hello)
}

#[cfg(test)]
pub(crate) mod tests;
