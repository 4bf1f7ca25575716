//! DNS messages over UDP and TCP: the question of a query, the addresses
//! an answer gives for it (following CNAME chains inside the message), and
//! a REFUSED answer built in place.
//!
//! Every message is walked whole before anything is believed: the header
//! counts must describe exactly the bytes there are (records running past
//! the end, or bytes after the last record, are [`Reason::CountMismatch`]).
//! Names are read with compression, and a pointer must go strictly
//! backwards past every place this name has already been read from (so a
//! name is read in bounded time): a pointer at or after itself is
//! [`Reason::PointerForward`], one back into the part already read is
//! [`Reason::PointerLoop`], one into the header or past the end is
//! [`Reason::PointerOutOfBounds`]. Labels are at most 63 bytes (length
//! bytes 0x40..=0xBF, the obsolete extended label types, are
//! [`Reason::LabelTooLong`]), names at most 255 bytes on the wire, and
//! label bytes are letters, digits, `-` and `_`
//! ([`Reason::InvalidLabel`] otherwise, so a name's text form is
//! unambiguous). Names come out as lowercase dotted text without the final
//! dot (the root is empty) in a caller-owned [`NameBuf`]; comparisons are
//! therefore case-insensitive (0x20 mixed case `wWw.ExAmPlE.cOm` is
//! `www.example.com`).
//!
//! DNS over TCP is a stream of messages each prefixed by a 2-byte length:
//! [`TcpFramer`] cuts it into messages across segments.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest name on the wire (RFC 1035 2.3.4).
pub const NAME_MAX: usize = 255;
/// Longest CNAME chain followed inside one answer.
pub const CNAME_HOPS_MAX: usize = 8;

const HEADER_LEN: usize = 12;
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Why a DNS message is dropped (or refused). `#[repr(u8)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// Shorter than its header, or a name or record cut short.
    Truncated,
    /// The header counts do not describe the message's bytes.
    CountMismatch,
    /// A query with QR set, or a response without it.
    WrongDirection,
    /// An opcode other than QUERY.
    Opcode,
    /// QDCOUNT other than 1.
    QuestionCount,
    /// A label length byte of 64..=191.
    LabelTooLong,
    /// A name longer than 255 bytes.
    NameTooLong,
    /// A byte other than a letter, digit, `-` or `_` in a label.
    InvalidLabel,
    /// A compression pointer that does not go back past the name so far.
    PointerLoop,
    /// A compression pointer to itself or later.
    PointerForward,
    /// A compression pointer into the header or past the end.
    PointerOutOfBounds,
    /// An A, AAAA or CNAME record whose data has the wrong length.
    BadRdata,
    /// A CNAME chain longer than [`CNAME_HOPS_MAX`] (or a loop).
    CnameChain,
    /// A TCP message longer than the caller's buffer, or of length 0.
    BadTcpLength,
}

impl Reason {
    /// Every reason, in `repr` order.
    pub const ALL: [Reason; 14] = [
        Reason::Truncated,
        Reason::CountMismatch,
        Reason::WrongDirection,
        Reason::Opcode,
        Reason::QuestionCount,
        Reason::LabelTooLong,
        Reason::NameTooLong,
        Reason::InvalidLabel,
        Reason::PointerLoop,
        Reason::PointerForward,
        Reason::PointerOutOfBounds,
        Reason::BadRdata,
        Reason::CnameChain,
        Reason::BadTcpLength,
    ];

    /// A stable snake_case name (counters, logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Truncated => "dns_truncated",
            Reason::CountMismatch => "dns_count_mismatch",
            Reason::WrongDirection => "dns_wrong_direction",
            Reason::Opcode => "dns_opcode",
            Reason::QuestionCount => "dns_question_count",
            Reason::LabelTooLong => "dns_label_too_long",
            Reason::NameTooLong => "dns_name_too_long",
            Reason::InvalidLabel => "dns_invalid_label",
            Reason::PointerLoop => "dns_pointer_loop",
            Reason::PointerForward => "dns_pointer_forward",
            Reason::PointerOutOfBounds => "dns_pointer_out_of_bounds",
            Reason::BadRdata => "dns_bad_rdata",
            Reason::CnameChain => "dns_cname_chain",
            Reason::BadTcpLength => "dns_bad_tcp_length",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name as lowercase dotted text, in a fixed buffer.
#[derive(Clone, Copy)]
pub struct NameBuf {
    bytes: [u8; NAME_MAX],
    len: u8,
}

impl NameBuf {
    pub const fn new() -> Self {
        NameBuf {
            bytes: [0; NAME_MAX],
            len: 0,
        }
    }

    /// The name: lowercase, labels joined by `.`, no final dot.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends a label (with a `.` before it unless first). The wire
    /// limit of 255 bytes keeps the text within 253.
    fn push_label(&mut self, label: &[u8]) {
        let mut len = self.len as usize;
        if len > 0 {
            self.bytes[len] = b'.';
            len += 1;
        }
        for &b in label {
            self.bytes[len] = b.to_ascii_lowercase();
            len += 1;
        }
        self.len = len as u8;
    }
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for NameBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for NameBuf {}

impl fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameBuf({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn parse(msg: &[u8]) -> Result<Header, Reason> {
        let h = msg.get(..HEADER_LEN).ok_or(Reason::Truncated)?;
        let w = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        Ok(Header {
            id: w(0),
            flags: w(2),
            qdcount: w(4),
            ancount: w(6),
            nscount: w(8),
            arcount: w(10),
        })
    }
    /// QR: a response.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }
    /// TC: truncated (the client will retry over TCP).
    pub fn truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }
}

/// The question of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question<'a> {
    /// Lowercase dotted text (borrowed from the caller's [`NameBuf`]).
    pub name: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
}

/// A parsed query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query<'a> {
    pub header: Header,
    pub question: Question<'a>,
    /// Offset just past the question (QNAME, QTYPE, QCLASS).
    pub question_end: usize,
}

/// One address an answer gives for the question's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Addr {
    pub ip: IpAddr,
    /// Seconds; a TTL with the top bit set counts as 0 (RFC 2181 8).
    pub ttl: u32,
}

impl Addr {
    pub const UNSPECIFIED: Addr = Addr {
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ttl: 0,
    };
}

/// What a response says about its question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answers<'a> {
    pub header: Header,
    pub question: Question<'a>,
    /// Addresses written to the caller's array (its first `count`).
    pub count: usize,
    /// Addresses that did not fit.
    pub dropped: usize,
    /// CNAMEs followed from the question's name.
    pub cname_hops: u8,
}

/// One resource record's place in a message.
#[derive(Clone, Copy, Debug)]
struct Rr {
    owner: usize,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: usize,
    rdlen: usize,
}

/// Reads the name at `start`, validating it; writes its text into `out`
/// if given. Returns the offset just past the name where it started (past
/// the first pointer, if any).
fn read_name(msg: &[u8], start: usize, mut out: Option<&mut NameBuf>) -> Result<usize, Reason> {
    if let Some(o) = out.as_deref_mut() {
        o.clear();
    }
    let mut pos = start;
    let mut limit = start;
    let mut end = None;
    let mut wire = 1usize; // the root label
    loop {
        let b = *msg.get(pos).ok_or(Reason::Truncated)?;
        match b & 0xc0 {
            0x00 if b == 0 => return Ok(end.unwrap_or(pos + 1)),
            0x00 => {
                let l = b as usize;
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(Reason::Truncated)?;
                wire += l + 1;
                if wire > NAME_MAX {
                    return Err(Reason::NameTooLong);
                }
                if !label
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
                {
                    return Err(Reason::InvalidLabel);
                }
                if let Some(o) = out.as_deref_mut() {
                    o.push_label(label);
                }
                pos += 1 + l;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(Reason::Truncated)?;
                let target = (usize::from(b & 0x3f) << 8) | usize::from(lo);
                if end.is_none() {
                    end = Some(pos + 2);
                }
                if target < HEADER_LEN || target >= msg.len() {
                    return Err(Reason::PointerOutOfBounds);
                }
                if target >= pos {
                    return Err(Reason::PointerForward);
                }
                if target >= limit {
                    return Err(Reason::PointerLoop);
                }
                limit = target;
                pos = target;
            }
            _ => return Err(Reason::LabelTooLong),
        }
    }
}

fn u16_at(msg: &[u8], at: usize) -> Result<u16, Reason> {
    let b = msg.get(at..at + 2).ok_or(Reason::Truncated)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn read_rr(msg: &[u8], at: usize) -> Result<(Rr, usize), Reason> {
    let p = read_name(msg, at, None)?;
    let fixed = msg.get(p..p + 10).ok_or(Reason::Truncated)?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let rdata = p + 10;
    if rdata + rdlen > msg.len() {
        return Err(Reason::Truncated);
    }
    Ok((
        Rr {
            owner: at,
            rtype,
            class,
            ttl,
            rdata,
            rdlen,
        },
        rdata + rdlen,
    ))
}

/// Walks the whole message: header, the one question (into `name`), every
/// record of every section; the counts must end exactly at the end.
/// Returns the header, the question and the offsets of the question's end.
fn walk<'n>(msg: &[u8], name: &'n mut NameBuf) -> Result<(Header, Question<'n>, usize), Reason> {
    let h = Header::parse(msg)?;
    if h.qdcount != 1 {
        return Err(Reason::QuestionCount);
    }
    let p = read_name(msg, HEADER_LEN, Some(name))?;
    let qtype = u16_at(msg, p)?;
    let qclass = u16_at(msg, p + 2)?;
    let qend = p + 4;
    let mut at = qend;
    let records = u32::from(h.ancount) + u32::from(h.nscount) + u32::from(h.arcount);
    for _ in 0..records {
        if at >= msg.len() {
            return Err(Reason::CountMismatch);
        }
        at = read_rr(msg, at)
            .map_err(|e| {
                if e == Reason::Truncated {
                    Reason::CountMismatch
                } else {
                    e
                }
            })?
            .1;
    }
    if at != msg.len() {
        return Err(Reason::CountMismatch);
    }
    Ok((
        h,
        Question {
            name: name.as_bytes(),
            qtype,
            qclass,
        },
        qend,
    ))
}

/// Parses a query (QR clear, opcode QUERY, one question), validating the
/// whole message. The question's name goes into `name`.
pub fn parse_query<'n>(msg: &[u8], name: &'n mut NameBuf) -> Result<Query<'n>, Reason> {
    let h = Header::parse(msg)?;
    if h.is_response() {
        return Err(Reason::WrongDirection);
    }
    if h.opcode() != 0 {
        return Err(Reason::Opcode);
    }
    let (header, question, question_end) = walk(msg, name)?;
    Ok(Query {
        header,
        question,
        question_end,
    })
}

/// Parses a response (QR set, one question), validating the whole
/// message, and writes into `out` the A and AAAA records of the answer
/// section that belong to the question's name or to the end of the CNAME
/// chain that starts at it (at most [`CNAME_HOPS_MAX`] hops), class IN
/// only, with their TTLs. Nothing is collected unless RCODE is 0. Records
/// beyond `out`'s length are counted in `dropped`.
pub fn parse_response<'n>(
    msg: &[u8],
    qname: &'n mut NameBuf,
    out: &mut [Addr],
) -> Result<Answers<'n>, Reason> {
    let h = Header::parse(msg)?;
    if !h.is_response() {
        return Err(Reason::WrongDirection);
    }
    let mut cur = NameBuf::new();
    let (header, _, qend) = walk(msg, &mut cur)?;
    *qname = cur;
    let mut answers = Answers {
        header,
        question: Question {
            name: &[],
            qtype: u16_at(msg, qend - 4)?,
            qclass: u16_at(msg, qend - 2)?,
        },
        count: 0,
        dropped: 0,
        cname_hops: 0,
    };
    if header.rcode() == 0 {
        let mut owner = NameBuf::new();
        // Follow the chain: find a CNAME owned by `cur`, move to its target.
        'hops: loop {
            let mut at = qend;
            for _ in 0..header.ancount {
                let (rr, next) = read_rr(msg, at)?;
                at = next;
                if rr.rtype != TYPE_CNAME || rr.class != CLASS_IN {
                    continue;
                }
                read_name(msg, rr.owner, Some(&mut owner))?;
                if owner != cur {
                    continue;
                }
                if usize::from(answers.cname_hops) == CNAME_HOPS_MAX {
                    return Err(Reason::CnameChain);
                }
                let end = read_name(msg, rr.rdata, Some(&mut cur))?;
                if end != rr.rdata + rr.rdlen {
                    return Err(Reason::BadRdata);
                }
                answers.cname_hops += 1;
                continue 'hops;
            }
            break;
        }
        let mut at = qend;
        for _ in 0..header.ancount {
            let (rr, next) = read_rr(msg, at)?;
            at = next;
            if !matches!(rr.rtype, TYPE_A | TYPE_AAAA) || rr.class != CLASS_IN {
                continue;
            }
            read_name(msg, rr.owner, Some(&mut owner))?;
            if owner != cur {
                continue;
            }
            let d = &msg[rr.rdata..rr.rdata + rr.rdlen];
            let ip = match (rr.rtype, d.len()) {
                (TYPE_A, 4) => IpAddr::V4(Ipv4Addr::new(d[0], d[1], d[2], d[3])),
                (TYPE_AAAA, 16) => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(d);
                    IpAddr::V6(Ipv6Addr::from(a))
                }
                _ => return Err(Reason::BadRdata),
            };
            let ttl = if rr.ttl & 0x8000_0000 != 0 { 0 } else { rr.ttl };
            match out.get_mut(answers.count) {
                Some(slot) => {
                    *slot = Addr { ip, ttl };
                    answers.count += 1;
                }
                None => answers.dropped += 1,
            }
        }
    }
    answers.question.name = qname.as_bytes();
    Ok(answers)
}

/// Turns the query in `msg` into a REFUSED response in place: same ID,
/// QR set, opcode and RD kept, AA/TC/RA/AD/CD cleared, RCODE 5, the
/// question echoed, no records (the OPT record, if any, is dropped).
/// Returns the response's length (a prefix of `msg`); over TCP the caller
/// rewrites the 2-byte length prefix.
pub fn refuse_in_place(msg: &mut [u8]) -> Result<usize, Reason> {
    let mut name = NameBuf::new();
    let end = parse_query(msg, &mut name)?.question_end;
    msg[2] = 0x80 | (msg[2] & 0x78) | (msg[2] & 0x01);
    msg[3] = 5;
    msg[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    Ok(end)
}

/// What one [`TcpFramer::feed`] call found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// All input taken; `buffered` bytes of a message held.
    NeedMore { buffered: usize },
    /// A complete message (without its length prefix).
    Message(&'a [u8]),
    /// Length 0 or longer than the buffer: reset. Sticky.
    Deny(Reason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Len0,
    Len1(u8),
    Body { need: u16, got: u16 },
    Failed(Reason),
}

/// Cuts a DNS-over-TCP stream (RFC 1035 4.2.2) into messages: 6 bytes of
/// state, the message assembled in a caller-owned buffer whose length is
/// the largest message accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFramer {
    state: Framing,
}

impl Default for TcpFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpFramer {
    pub const fn new() -> Self {
        TcpFramer {
            state: Framing::Len0,
        }
    }

    /// Feed the next in-order bytes; returns the bytes consumed and what
    /// they were. A message that arrives whole is returned from `input`
    /// itself; otherwise it is assembled in `buf` (the same buffer for the
    /// flow until the message is complete).
    pub fn feed<'a>(&mut self, buf: &'a mut [u8], input: &'a [u8]) -> (usize, Event<'a>) {
        let mut i = 0;
        loop {
            match self.state {
                Framing::Failed(r) => return (input.len(), Event::Deny(r)),
                Framing::Len0 | Framing::Len1(_) if i == input.len() => {
                    return (i, Event::NeedMore { buffered: 0 });
                }
                Framing::Len0 => {
                    self.state = Framing::Len1(input[i]);
                    i += 1;
                }
                Framing::Len1(hi) => {
                    let need = u16::from_be_bytes([hi, input[i]]);
                    i += 1;
                    if need == 0 || usize::from(need) > buf.len() {
                        self.state = Framing::Failed(Reason::BadTcpLength);
                        return (input.len(), Event::Deny(Reason::BadTcpLength));
                    }
                    let need_us = usize::from(need);
                    if input.len() - i >= need_us {
                        self.state = Framing::Len0;
                        return (i + need_us, Event::Message(&input[i..i + need_us]));
                    }
                    self.state = Framing::Body { need, got: 0 };
                }
                Framing::Body { need, got } => {
                    let (need_us, got_us) = (usize::from(need), usize::from(got));
                    let take = (need_us - got_us).min(input.len() - i);
                    buf[got_us..got_us + take].copy_from_slice(&input[i..i + take]);
                    i += take;
                    let got_us = got_us + take;
                    if got_us == need_us {
                        self.state = Framing::Len0;
                        return (i, Event::Message(&buf[..need_us]));
                    }
                    self.state = Framing::Body {
                        need,
                        got: got_us as u16,
                    };
                    return (i, Event::NeedMore { buffered: got_us });
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
