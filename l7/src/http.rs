//! The client-to-server byte stream of an HTTP/1.x connection: every
//! request head of a keep-alive or pipelined connection, bodies skipped by
//! their framing, ambiguous framing denied.
//!
//! ```text
//! engine, per in-order segment of the client's stream:
//!   let mut rest = segment;
//!   while !rest.is_empty() {
//!       let (used, ev) = flow.http.feed(&mut head_buf, rest);
//!       rest = &rest[used..];
//!       match ev {
//!           Event::NeedMore { buffered } => {}       // all of rest was taken
//!           Event::Request(req) => { /* policy on req.method, req.path, req.host */ }
//!           Event::Body { len } => {}                // `len` body bytes, not inspected
//!           Event::Opaque => {}                      // after an accepted upgrade
//!           Event::Deny(reason) => { /* reset both ways, count reason */ break }
//!       }
//!   }
//! ```
//!
//! # What is parsed, and what is denied
//!
//! A head is the request line and the header fields up to the empty line;
//! it must fit in [`HEAD_MAX`] bytes ([`Reason::HeadTooLarge`]). Lines end
//! with CRLF only: a bare CR or a bare LF anywhere in a head or in chunked
//! framing is denied (two parsers that disagree about line ends is how
//! requests are smuggled). The request line is exactly `method SP target
//! SP HTTP/1.1` (or `HTTP/1.0`); a line without a version is HTTP/0.9,
//! denied. The method is any token: methods are case-sensitive (RFC 9110
//! 9.1), so `get` parses, is not [`Method::Get`], and never matches a rule
//! that names `GET`. The target is checked against RFC 3986's characters
//! (no spaces, controls, bytes >= 0x80, `\`, `"`, `#`, `{`...), then
//! normalised with [`normalize_path`] and [`normalize_host`].
//!
//! Header names are tokens with no space before the colon; values are
//! visible characters, spaces and tabs (and obs-text). A line that starts
//! with a space or tab (obs-fold) is denied. Framing: one
//! `Content-Length` of digits (two are denied, even equal; so is a list);
//! one `Transfer-Encoding` whose value is exactly `chunked` (any other or
//! additional coding is denied, and Transfer-Encoding in HTTP/1.0 too);
//! both together are denied; one `Host` (two are denied; none in HTTP/1.1
//! is denied). An absolute-form target's authority is normalised and must
//! equal the Host field ([`Reason::HostMismatch`]); its userinfo is denied.
//!
//! A body is skipped, never parsed for requests: by Content-Length, or by
//! chunked framing (chunk sizes in hex, extensions after `;`, the last
//! chunk, trailer fields, all CRLF-terminated and bounded), so a request
//! line inside a body is body. A request with `Upgrade` or the method
//! `CONNECT` ends HTTP on the connection if the server agrees: more client
//! bytes after it are denied unless the engine, having seen the server's
//! 101 or 2xx, calls [`HttpStream::upgraded`].

use core::fmt;

/// Largest request head (request line, header fields, the empty line).
pub const HEAD_MAX: usize = 4096;
/// Largest normalised host name, in bytes.
pub const HOST_MAX: usize = 256;
/// Longest chunk-size line (size and extensions), in bytes.
pub const CHUNK_LINE_MAX: u16 = 1024;
/// Most bytes of trailer fields after the last chunk.
pub const TRAILER_MAX: u16 = 4096;

/// Why a request stream is denied. `#[repr(u8)]`: usable as a counter
/// index ([`Reason::ALL`] lists them in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// The head did not end within [`HEAD_MAX`] bytes.
    HeadTooLarge,
    /// A CR not followed by LF.
    BareCr,
    /// An LF not preceded by CR.
    BareLf,
    /// The request line is not `method SP target SP version`.
    InvalidRequestLine,
    /// A method that is not a token.
    InvalidMethod,
    /// A request line without a version.
    Http09,
    /// A version other than HTTP/1.0 and HTTP/1.1.
    UnsupportedVersion,
    /// A target with characters outside RFC 3986, a bad percent escape,
    /// or a form the method does not allow.
    InvalidTarget,
    /// A header field name that is not a token (or space before the colon).
    InvalidHeaderName,
    /// A header field line without a colon.
    InvalidHeaderLine,
    /// Control characters in a header field value.
    InvalidHeaderValue,
    /// A header line starting with a space or tab (obsolete line folding).
    ObsFold,
    /// Two `Host` fields.
    DuplicateHost,
    /// HTTP/1.1 without `Host`.
    MissingHost,
    /// A `Host` (or absolute-form authority) that is not a valid host.
    InvalidHost,
    /// An absolute-form target whose host differs from the `Host` field.
    HostMismatch,
    /// Userinfo (`user@`) in an absolute-form target.
    Userinfo,
    /// Two `Content-Length` fields (even equal ones).
    DuplicateContentLength,
    /// A `Content-Length` that is not one decimal number fitting 64 bits.
    InvalidContentLength,
    /// `Content-Length` together with `Transfer-Encoding`.
    ContentLengthWithTransferEncoding,
    /// Two `Transfer-Encoding` fields.
    DuplicateTransferEncoding,
    /// A transfer coding other than exactly `chunked`.
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request.
    TransferEncodingHttp10,
    /// A malformed chunk-size line or chunk terminator.
    InvalidChunk,
    /// A chunk size that does not fit 64 bits.
    ChunkSizeOverflow,
    /// A chunk-size line longer than [`CHUNK_LINE_MAX`].
    ChunkLineTooLong,
    /// A malformed trailer field.
    InvalidTrailer,
    /// Trailer fields longer than [`TRAILER_MAX`].
    TrailerTooLarge,
    /// Client bytes after an `Upgrade` or `CONNECT` request that the
    /// engine did not see accepted.
    AfterUpgrade,
}

impl Reason {
    /// Every reason, in `repr` order.
    pub const ALL: [Reason; 29] = [
        Reason::HeadTooLarge,
        Reason::BareCr,
        Reason::BareLf,
        Reason::InvalidRequestLine,
        Reason::InvalidMethod,
        Reason::Http09,
        Reason::UnsupportedVersion,
        Reason::InvalidTarget,
        Reason::InvalidHeaderName,
        Reason::InvalidHeaderLine,
        Reason::InvalidHeaderValue,
        Reason::ObsFold,
        Reason::DuplicateHost,
        Reason::MissingHost,
        Reason::InvalidHost,
        Reason::HostMismatch,
        Reason::Userinfo,
        Reason::DuplicateContentLength,
        Reason::InvalidContentLength,
        Reason::ContentLengthWithTransferEncoding,
        Reason::DuplicateTransferEncoding,
        Reason::UnsupportedTransferEncoding,
        Reason::TransferEncodingHttp10,
        Reason::InvalidChunk,
        Reason::ChunkSizeOverflow,
        Reason::ChunkLineTooLong,
        Reason::InvalidTrailer,
        Reason::TrailerTooLarge,
        Reason::AfterUpgrade,
    ];

    /// A stable snake_case name (counters, logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::HeadTooLarge => "http_head_too_large",
            Reason::BareCr => "http_bare_cr",
            Reason::BareLf => "http_bare_lf",
            Reason::InvalidRequestLine => "http_invalid_request_line",
            Reason::InvalidMethod => "http_invalid_method",
            Reason::Http09 => "http_0_9",
            Reason::UnsupportedVersion => "http_unsupported_version",
            Reason::InvalidTarget => "http_invalid_target",
            Reason::InvalidHeaderName => "http_invalid_header_name",
            Reason::InvalidHeaderLine => "http_invalid_header_line",
            Reason::InvalidHeaderValue => "http_invalid_header_value",
            Reason::ObsFold => "http_obs_fold",
            Reason::DuplicateHost => "http_duplicate_host",
            Reason::MissingHost => "http_missing_host",
            Reason::InvalidHost => "http_invalid_host",
            Reason::HostMismatch => "http_host_mismatch",
            Reason::Userinfo => "http_userinfo",
            Reason::DuplicateContentLength => "http_duplicate_content_length",
            Reason::InvalidContentLength => "http_invalid_content_length",
            Reason::ContentLengthWithTransferEncoding => "http_cl_with_te",
            Reason::DuplicateTransferEncoding => "http_duplicate_transfer_encoding",
            Reason::UnsupportedTransferEncoding => "http_unsupported_transfer_encoding",
            Reason::TransferEncodingHttp10 => "http_te_in_http10",
            Reason::InvalidChunk => "http_invalid_chunk",
            Reason::ChunkSizeOverflow => "http_chunk_size_overflow",
            Reason::ChunkLineTooLong => "http_chunk_line_too_long",
            Reason::InvalidTrailer => "http_invalid_trailer",
            Reason::TrailerTooLarge => "http_trailer_too_large",
            Reason::AfterUpgrade => "http_after_upgrade",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The methods of RFC 9110 and PATCH, spelled exactly (case-sensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

impl Method {
    /// Every known method, in `repr` order.
    pub const ALL: [Method; 9] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Connect,
        Method::Options,
        Method::Trace,
        Method::Patch,
    ];

    /// The method's token.
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            Method::Get => b"GET",
            Method::Head => b"HEAD",
            Method::Post => b"POST",
            Method::Put => b"PUT",
            Method::Delete => b"DELETE",
            Method::Connect => b"CONNECT",
            Method::Options => b"OPTIONS",
            Method::Trace => b"TRACE",
            Method::Patch => b"PATCH",
        }
    }

    /// The known method spelled exactly `token` (so `get` is `None`).
    pub fn from_bytes(token: &[u8]) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_bytes() == token)
    }
}

/// The HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    Http10,
    Http11,
}

/// The form of a request target (RFC 9112 3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetForm {
    /// `/path?query`
    Origin,
    /// `http://host:port/path?query`
    Absolute,
    /// `host:port` (CONNECT)
    Authority,
    /// `*` (OPTIONS)
    Asterisk,
}

/// How the body after a head is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// No body: the next byte starts the next request.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A normalised host: lowercase name (no trailing dot; IPv6 literals keep
/// their brackets) and the port if one was given and is not the scheme's
/// default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Host<'a> {
    pub name: &'a [u8],
    pub port: Option<u16>,
}

/// A complete request head, its parts normalised. Borrows the segment the
/// head arrived in, or the [`HeadBuf`] it was assembled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method token, exactly as sent (case-sensitive).
    pub method: &'a [u8],
    pub version: Version,
    /// The raw request target.
    pub target: &'a [u8],
    pub form: TargetForm,
    /// The normalised path ([`normalize_path`]); `*` for asterisk-form,
    /// empty for authority-form.
    pub path: &'a [u8],
    /// The raw query, without its `?`, if there was one.
    pub query: Option<&'a [u8]>,
    /// The normalised host: the `Host` field's (absolute-form and
    /// authority-form targets must agree with it), or the target's when
    /// an HTTP/1.0 request has no `Host`.
    pub host: Option<Host<'a>>,
    /// How the body is framed (the stream skips it).
    pub body: Body,
    /// `Upgrade` field present or method CONNECT.
    pub upgrade: bool,
    /// The whole raw head, for [`Request::header`].
    pub head: &'a [u8],
}

impl<'a> Request<'a> {
    /// The known method, if the token is one (exact spelling).
    pub fn known_method(&self) -> Option<Method> {
        Method::from_bytes(self.method)
    }

    /// The value (OWS-trimmed) of the first header field named `name`
    /// (ASCII case-insensitive).
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        let mut lines = Lines(self.head);
        lines.next(); // request line
        for line in lines {
            let colon = line.iter().position(|&b| b == b':')?;
            if line[..colon].eq_ignore_ascii_case(name) {
                return Some(trim_ows(&line[colon + 1..]));
            }
        }
        None
    }
}

/// What one [`HttpStream::feed`] call found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// All input was taken; no complete head yet. `buffered` bytes of a
    /// partial head are held in the [`HeadBuf`] (0 between requests).
    NeedMore { buffered: usize },
    /// A request head is complete; its body, if any, follows.
    Request(Request<'a>),
    /// `len` bytes of body (with their chunked framing): pass them on, not
    /// inspected.
    Body { len: usize },
    /// Bytes after an upgrade the engine accepted: no longer HTTP.
    Opaque,
    /// Malformed or ambiguous: reset the connection. Sticky.
    Deny(Reason),
}

/// The caller-owned buffer of one flow's partial request head, and the
/// scratch space for its normalised path and host. 8.5 KiB; only a flow
/// whose head is split over segments holds bytes in it between calls
/// ([`HttpStream::buffered`] says whether), so the engine can pool them.
pub struct HeadBuf {
    head: [u8; HEAD_MAX],
    len: usize,
    path: [u8; HEAD_MAX],
    host: [u8; HOST_MAX],
}

impl HeadBuf {
    pub const fn new() -> Self {
        HeadBuf {
            head: [0; HEAD_MAX],
            len: 0,
            path: [0; HEAD_MAX],
            host: [0; HOST_MAX],
        }
    }

    /// Bytes of a partial head held.
    pub fn buffered(&self) -> usize {
        self.len
    }
}

impl Default for HeadBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HeadBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadBuf")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Finds the end of a head: CRLF CRLF, with every CR followed by LF and
/// every LF preceded by CR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scan {
    prev: u8,
    line_len: u16,
}

impl Scan {
    const fn new() -> Self {
        Scan {
            prev: 0,
            line_len: 0,
        }
    }

    /// The index just past the head's final LF, if it is in `bytes`.
    fn run(&mut self, bytes: &[u8]) -> Result<Option<usize>, Reason> {
        for (i, &b) in bytes.iter().enumerate() {
            if b > b'\r' && self.prev != b'\r' {
                // The common case: an ordinary byte inside a line.
                self.line_len = self.line_len.saturating_add(1);
                self.prev = b;
                continue;
            }
            if self.prev == b'\r' && b != b'\n' {
                return Err(Reason::BareCr);
            }
            if b == b'\n' {
                if self.prev != b'\r' {
                    return Err(Reason::BareLf);
                }
                if self.line_len == 1 {
                    *self = Scan::new();
                    return Ok(Some(i + 1));
                }
                self.line_len = 0;
            } else {
                self.line_len = self.line_len.saturating_add(1);
            }
            self.prev = b;
        }
        Ok(None)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Size { value: u64, digits: bool },
    Ext { value: u64 },
    SizeLf { value: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked {
        chunk: Chunk,
        line: u16,
        trailer: u16,
    },
    /// After an Upgrade/CONNECT request: waiting for the engine's word.
    Upgrading,
    Opaque,
    Failed(Reason),
}

/// The per-flow state of a client-to-server HTTP/1.x stream: 24 bytes,
/// `Copy`. The partial head lives in a [`HeadBuf`] the caller lends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpStream {
    state: State,
    scan: Scan,
    /// The request whose body is being skipped asked for an upgrade.
    upgrade: bool,
}

impl Default for HttpStream {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpStream {
    pub const fn new() -> Self {
        HttpStream {
            state: State::Head,
            scan: Scan::new(),
            upgrade: false,
        }
    }

    /// The reason this stream was denied, if it was.
    pub fn denied(&self) -> Option<Reason> {
        match self.state {
            State::Failed(r) => Some(r),
            _ => None,
        }
    }

    /// Body bytes still to come under Content-Length framing.
    pub fn body_remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            _ => None,
        }
    }

    /// The server accepted the Upgrade/CONNECT request (101 or 2xx): the
    /// rest of the client's stream is opaque. Ignored in any other state.
    pub fn upgraded(&mut self) {
        if self.state == State::Upgrading {
            self.state = State::Opaque;
        }
    }

    fn after_body(&self) -> State {
        if self.upgrade {
            State::Upgrading
        } else {
            State::Head
        }
    }

    fn fail(&mut self, r: Reason) -> Reason {
        self.state = State::Failed(r);
        r
    }

    /// Feed the next in-order bytes of the client's stream. Returns how
    /// many bytes of `input` were consumed and what they were; call again
    /// with the rest until it is empty. `buf` must be the same buffer for
    /// the whole flow while a head is partial ([`Event::NeedMore`] with
    /// `buffered > 0`); with `buffered == 0` any cleared buffer will do.
    pub fn feed<'a>(&mut self, buf: &'a mut HeadBuf, input: &'a [u8]) -> (usize, Event<'a>) {
        match self.state {
            State::Failed(r) => (input.len(), Event::Deny(r)),
            State::Opaque => (input.len(), Event::Opaque),
            State::Upgrading if input.is_empty() => (0, Event::NeedMore { buffered: 0 }),
            State::Upgrading => (input.len(), Event::Deny(self.fail(Reason::AfterUpgrade))),
            State::Length(rem) => {
                if input.is_empty() {
                    return (0, Event::NeedMore { buffered: 0 });
                }
                let n = rem.min(input.len() as u64);
                let left = rem - n;
                self.state = if left > 0 {
                    State::Length(left)
                } else {
                    self.after_body()
                };
                (n as usize, Event::Body { len: n as usize })
            }
            State::Chunked {
                chunk,
                line,
                trailer,
            } => {
                if input.is_empty() {
                    return (0, Event::NeedMore { buffered: 0 });
                }
                match self.chunked(chunk, line, trailer, input) {
                    Ok(n) => (n, Event::Body { len: n }),
                    Err(r) => (input.len(), Event::Deny(self.fail(r))),
                }
            }
            State::Head => self.head(buf, input),
        }
    }

    fn head<'a>(&mut self, buf: &'a mut HeadBuf, input: &'a [u8]) -> (usize, Event<'a>) {
        let HeadBuf {
            head,
            len,
            path,
            host,
        } = buf;
        let start = *len;
        let room = HEAD_MAX - start;
        let window = &input[..input.len().min(room)];
        let end = match self.scan.run(window) {
            Err(r) => {
                *len = 0;
                return (input.len(), Event::Deny(self.fail(r)));
            }
            Ok(None) => {
                if window.len() == room {
                    *len = 0;
                    return (input.len(), Event::Deny(self.fail(Reason::HeadTooLarge)));
                }
                head[start..start + window.len()].copy_from_slice(window);
                *len = start + window.len();
                return (input.len(), Event::NeedMore { buffered: *len });
            }
            Ok(Some(end)) => end,
        };
        *len = 0;
        let bytes: &'a [u8] = if start == 0 {
            &input[..end]
        } else {
            head[start..start + end].copy_from_slice(&window[..end]);
            &head[..start + end]
        };
        match parse_head(bytes, path, host) {
            Ok(req) => {
                self.upgrade = req.upgrade;
                self.state = match req.body {
                    Body::None | Body::Length(0) if req.upgrade => State::Upgrading,
                    Body::None | Body::Length(0) => State::Head,
                    Body::Length(n) => State::Length(n),
                    Body::Chunked => State::Chunked {
                        chunk: Chunk::Size {
                            value: 0,
                            digits: false,
                        },
                        line: 0,
                        trailer: 0,
                    },
                };
                (end, Event::Request(req))
            }
            Err(r) => (input.len(), Event::Deny(self.fail(r))),
        }
    }

    /// Runs the chunked-body machine over `input`; returns the bytes it
    /// took (all of them, or up to the end of the body).
    fn chunked(
        &mut self,
        mut chunk: Chunk,
        mut line: u16,
        mut trailer: u16,
        input: &[u8],
    ) -> Result<usize, Reason> {
        let mut i = 0;
        while i < input.len() {
            if let Chunk::Data(rem) = chunk {
                let n = rem.min((input.len() - i) as u64);
                i += n as usize;
                chunk = if rem == n {
                    Chunk::DataCr
                } else {
                    Chunk::Data(rem - n)
                };
                continue;
            }
            let b = input[i];
            i += 1;
            chunk = match chunk {
                Chunk::Size { value, digits } => {
                    line += 1;
                    if let Some(d) = hex_val(b) {
                        let v = value
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(u64::from(d)))
                            .ok_or(Reason::ChunkSizeOverflow)?;
                        Chunk::Size {
                            value: v,
                            digits: true,
                        }
                    } else if digits && b == b';' {
                        Chunk::Ext { value }
                    } else if digits && b == b'\r' {
                        Chunk::SizeLf { value }
                    } else if b == b'\n' {
                        return Err(Reason::BareLf);
                    } else {
                        return Err(Reason::InvalidChunk);
                    }
                }
                Chunk::Ext { value } => {
                    line += 1;
                    match b {
                        b'\r' => Chunk::SizeLf { value },
                        b'\n' => return Err(Reason::BareLf),
                        b if is_field_vchar(b) => Chunk::Ext { value },
                        _ => return Err(Reason::InvalidChunk),
                    }
                }
                Chunk::SizeLf { value } => {
                    if b != b'\n' {
                        return Err(Reason::BareCr);
                    }
                    line = 0;
                    if value == 0 {
                        Chunk::TrailerStart
                    } else {
                        Chunk::Data(value)
                    }
                }
                // Consumed in bulk above; never reached.
                Chunk::Data(_) => return Err(Reason::InvalidChunk),
                Chunk::DataCr => match b {
                    b'\r' => Chunk::DataLf,
                    b'\n' => return Err(Reason::BareLf),
                    _ => return Err(Reason::InvalidChunk),
                },
                Chunk::DataLf => {
                    if b != b'\n' {
                        return Err(Reason::BareCr);
                    }
                    Chunk::Size {
                        value: 0,
                        digits: false,
                    }
                }
                Chunk::TrailerStart => {
                    trailer += 1;
                    match b {
                        b'\r' => Chunk::EndLf,
                        b'\n' => return Err(Reason::BareLf),
                        b' ' | b'\t' => return Err(Reason::ObsFold),
                        b if is_tchar(b) => Chunk::TrailerLine,
                        _ => return Err(Reason::InvalidTrailer),
                    }
                }
                Chunk::TrailerLine => {
                    trailer += 1;
                    match b {
                        b'\r' => Chunk::TrailerLf,
                        b'\n' => return Err(Reason::BareLf),
                        b if is_field_vchar(b) => Chunk::TrailerLine,
                        _ => return Err(Reason::InvalidTrailer),
                    }
                }
                Chunk::TrailerLf => {
                    trailer += 1;
                    if b != b'\n' {
                        return Err(Reason::BareCr);
                    }
                    Chunk::TrailerStart
                }
                Chunk::EndLf => {
                    if b != b'\n' {
                        return Err(Reason::BareCr);
                    }
                    self.state = self.after_body();
                    return Ok(i);
                }
            };
            if line > CHUNK_LINE_MAX {
                return Err(Reason::ChunkLineTooLong);
            }
            if trailer > TRAILER_MAX {
                return Err(Reason::TrailerTooLarge);
            }
        }
        self.state = State::Chunked {
            chunk,
            line,
            trailer,
        };
        Ok(i)
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A 256-entry byte class, built at compile time.
const fn class(set: &[u8], alnum: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < set.len() {
        t[set[i] as usize] = true;
        i += 1;
    }
    if alnum {
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            if b.is_ascii_alphanumeric() {
                t[c] = true;
            }
            c += 1;
        }
    }
    t
}

const TCHAR: [bool; 256] = class(b"!#$%&'*+-.^_`|~", true);
const UNRESERVED: [bool; 256] = class(b"-._~", true);
const TARGET: [bool; 256] = class(b"-._~!$&'()*+,;=:@/?%[]", true);

/// RFC 9110 tchar.
fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// Field value characters: VCHAR, SP, HTAB, obs-text.
fn is_field_vchar(b: u8) -> bool {
    matches!(b, b'\t' | 0x20..=0x7e | 0x80..=0xff)
}

/// RFC 3986 unreserved.
fn is_unreserved(b: u8) -> bool {
    UNRESERVED[b as usize]
}

/// Characters allowed in a request target (before percent-escape checks):
/// unreserved, sub-delims, `:` `@` `/` `?` `%`, and `[` `]` (IP literals).
fn is_target_char(b: u8) -> bool {
    TARGET[b as usize]
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// CRLF-separated lines of a head, up to (not including) the empty line.
/// The scanner has proved every CR is followed by LF.
struct Lines<'a>(&'a [u8]);

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let cr = self.0.iter().position(|&b| b == b'\r')?;
        let line = &self.0[..cr];
        self.0 = self.0.get(cr + 2..).unwrap_or(&[]);
        if line.is_empty() {
            self.0 = &[];
            return None;
        }
        Some(line)
    }
}

fn parse_head<'a>(
    head: &'a [u8],
    path_buf: &'a mut [u8; HEAD_MAX],
    host_buf: &'a mut [u8; HOST_MAX],
) -> Result<Request<'a>, Reason> {
    let mut lines = Lines(head);
    let line = lines.next().ok_or(Reason::InvalidRequestLine)?;

    // method SP target SP version
    let sp1 = line
        .iter()
        .position(|&b| b == b' ')
        .ok_or(Reason::InvalidRequestLine)?;
    let method = &line[..sp1];
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Reason::InvalidMethod);
    }
    let rest = &line[sp1 + 1..];
    let (target, version) = match rest.iter().position(|&b| b == b' ') {
        Some(sp2) => (&rest[..sp2], &rest[sp2 + 1..]),
        None if !rest.is_empty() && rest.iter().all(|&b| is_target_char(b)) => {
            return Err(Reason::Http09)
        }
        None => return Err(Reason::InvalidRequestLine),
    };
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        v if v.starts_with(b"HTTP/") => return Err(Reason::UnsupportedVersion),
        _ => return Err(Reason::InvalidRequestLine),
    };
    if target.is_empty() || !target.iter().all(|&b| is_target_char(b)) {
        return Err(Reason::InvalidTarget);
    }

    let mut host_field: Option<&[u8]> = None;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut upgrade = false;
    for line in lines {
        if matches!(line[0], b' ' | b'\t') {
            return Err(Reason::ObsFold);
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Reason::InvalidHeaderLine)?;
        let name = &line[..colon];
        if !name.iter().all(|&b| is_tchar(b)) || name.is_empty() {
            return Err(Reason::InvalidHeaderName);
        }
        let value = trim_ows(&line[colon + 1..]);
        if !value.iter().all(|&b| is_field_vchar(b)) {
            return Err(Reason::InvalidHeaderValue);
        }
        if name.eq_ignore_ascii_case(b"host") {
            if host_field.replace(value).is_some() {
                return Err(Reason::DuplicateHost);
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return Err(Reason::DuplicateContentLength);
            }
            content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked {
                return Err(Reason::DuplicateTransferEncoding);
            }
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(Reason::UnsupportedTransferEncoding);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        }
    }
    if chunked && content_length.is_some() {
        return Err(Reason::ContentLengthWithTransferEncoding);
    }
    if chunked && version == Version::Http10 {
        return Err(Reason::TransferEncodingHttp10);
    }
    if version == Version::Http11 && host_field.is_none() {
        return Err(Reason::MissingHost);
    }
    let body = match (chunked, content_length) {
        (true, _) => Body::Chunked,
        (false, Some(n)) => Body::Length(n),
        (false, None) => Body::None,
    };
    upgrade |= method == b"CONNECT";

    // The target.
    let split = split_target(method, target)?;
    let (path, query) = match split.path {
        Some(p) => (
            normalize_path(p, path_buf).map_err(|_| Reason::InvalidTarget)?,
            split.query,
        ),
        None => (split.asterisk_or_empty, None),
    };
    let mut host = None;
    let mut scratch = [0u8; HOST_MAX];
    if let Some(h) = host_field {
        let hh = normalize_host(h, split.default_port, host_buf).ok_or(Reason::InvalidHost)?;
        if let Some(auth) = split.authority {
            let th = normalize_host(auth, split.default_port, &mut scratch)
                .ok_or(Reason::InvalidHost)?;
            if th != hh {
                return Err(Reason::HostMismatch);
            }
        }
        host = Some(hh);
    } else if let Some(auth) = split.authority {
        host = Some(normalize_host(auth, split.default_port, host_buf).ok_or(Reason::InvalidHost)?);
    }
    Ok(Request {
        method,
        version,
        target,
        form: split.form,
        path,
        query,
        host,
        body,
        upgrade,
        head,
    })
}

fn parse_content_length(v: &[u8]) -> Result<u64, Reason> {
    if v.is_empty() || v.len() > 19 {
        return Err(Reason::InvalidContentLength);
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(Reason::InvalidContentLength);
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Ok(n)
}

struct SplitTarget<'a> {
    form: TargetForm,
    path: Option<&'a [u8]>,
    query: Option<&'a [u8]>,
    authority: Option<&'a [u8]>,
    default_port: u16,
    asterisk_or_empty: &'static [u8],
}

fn split_target<'a>(method: &[u8], target: &'a [u8]) -> Result<SplitTarget<'a>, Reason> {
    let path_query = |pq: &'a [u8]| match pq.iter().position(|&b| b == b'?') {
        Some(q) => (&pq[..q], Some(&pq[q + 1..])),
        None => (pq, None),
    };
    if target[0] == b'/' {
        let (p, q) = path_query(target);
        return Ok(SplitTarget {
            form: TargetForm::Origin,
            path: Some(p),
            query: q,
            authority: None,
            default_port: 80,
            asterisk_or_empty: b"",
        });
    }
    if target == b"*" {
        if method != b"OPTIONS" {
            return Err(Reason::InvalidTarget);
        }
        return Ok(SplitTarget {
            form: TargetForm::Asterisk,
            path: None,
            query: None,
            authority: None,
            default_port: 80,
            asterisk_or_empty: b"*",
        });
    }
    if method == b"CONNECT" {
        if target.contains(&b'/') || target.contains(&b'@') {
            return Err(Reason::InvalidTarget);
        }
        return Ok(SplitTarget {
            form: TargetForm::Authority,
            path: None,
            query: None,
            authority: Some(target),
            default_port: 0,
            asterisk_or_empty: b"",
        });
    }
    let (default_port, rest) = if target.len() > 7 && target[..7].eq_ignore_ascii_case(b"http://") {
        (80, &target[7..])
    } else if target.len() > 8 && target[..8].eq_ignore_ascii_case(b"https://") {
        (443, &target[8..])
    } else {
        return Err(Reason::InvalidTarget);
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains(&b'@') {
        return Err(Reason::Userinfo);
    }
    let pq = &rest[end..];
    let (p, q) = path_query(pq);
    Ok(SplitTarget {
        form: TargetForm::Absolute,
        // An empty path is "/" (RFC 9112 3.2.2).
        path: Some(if p.is_empty() { b"/" } else { p }),
        query: q,
        authority: Some(authority),
        default_port,
        asterisk_or_empty: b"",
    })
}

/// Why a path does not normalise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathError {
    /// Does not start with `/`.
    NotAbsolute,
    /// `%` not followed by two hex digits.
    BadPercent,
    /// The output buffer is shorter than the path.
    TooLong,
}

/// Normalises an absolute path (no query) into `out` and returns it:
///
/// 1. percent-escapes of *unreserved* characters are decoded (`%61` is
///    `a`, `%2e` is `.`); every other escape stays encoded, its hex digits
///    uppercased (`%2f` becomes `%2F`, which is then not equal to `/`);
/// 2. empty segments are dropped (`//admin` is `/admin`; a trailing slash
///    stays);
/// 3. dot segments are removed as in RFC 3986 5.2.4 (`/api/../admin` is
///    `/admin`, `/..` is `/`, `/a/.` is `/a/`).
///
/// The output never contains `//`, `/./` or `/../`, never ends in `/.`
/// or `/..`, starts with `/`, is never longer than the input, and
/// normalising it again returns it unchanged. Bytes other than `%`
/// escapes are copied as they are (the request parser has already
/// refused characters outside RFC 3986).
pub fn normalize_path<'o>(path: &[u8], out: &'o mut [u8]) -> Result<&'o [u8], PathError> {
    if path.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if out.len() < path.len() {
        return Err(PathError::TooLong);
    }
    out[0] = b'/';
    let mut len = 1; // out[..len] always ends with '/' between segments
    let mut i = 1;
    while i <= path.len() {
        // One segment: path[i..j], decoded into out[len..].
        let seg_start = len;
        let mut j = i;
        while j < path.len() && path[j] != b'/' {
            let b = path[j];
            if b == b'%' {
                let (h, l) = match (path.get(j + 1), path.get(j + 2)) {
                    (Some(&h), Some(&l)) => (h, l),
                    _ => return Err(PathError::BadPercent),
                };
                let v = match (hex_val(h), hex_val(l)) {
                    (Some(h), Some(l)) => h * 16 + l,
                    _ => return Err(PathError::BadPercent),
                };
                if is_unreserved(v) {
                    out[len] = v;
                    len += 1;
                } else {
                    out[len] = b'%';
                    out[len + 1] = h.to_ascii_uppercase();
                    out[len + 2] = l.to_ascii_uppercase();
                    len += 3;
                }
                j += 3;
            } else {
                out[len] = b;
                len += 1;
                j += 1;
            }
        }
        let last = j >= path.len();
        match &out[seg_start..len] {
            b"" | b"." => len = seg_start,
            b".." => {
                len = seg_start;
                if len > 1 {
                    // drop the trailing '/' and the segment before it
                    len -= 1;
                    while out[len - 1] != b'/' {
                        len -= 1;
                    }
                }
            }
            _ => {
                if !last {
                    out[len] = b'/';
                    len += 1;
                }
            }
        }
        i = j + 1;
    }
    Ok(&out[..len])
}

/// Normalises a host (`Host` field or target authority) into `out`:
/// lowercase, one trailing dot removed, the port split off and dropped if
/// it equals `default_port` (an empty port, `host:`, is no port). Names
/// are reg-names of unreserved characters (no percent escapes), or IPv6
/// literals in brackets. `None` if it is not a valid host.
pub fn normalize_host<'o>(raw: &[u8], default_port: u16, out: &'o mut [u8]) -> Option<Host<'o>> {
    let (name, port) = if raw.first() == Some(&b'[') {
        let close = raw.iter().position(|&b| b == b']')?;
        let lit = &raw[1..close];
        if lit.is_empty()
            || !lit
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        let rest = &raw[close + 1..];
        let port = match rest {
            [] => None,
            [b':', p @ ..] => Some(p),
            _ => return None,
        };
        (&raw[..=close], port)
    } else {
        match raw.iter().position(|&b| b == b':') {
            Some(c) => (&raw[..c], Some(&raw[c + 1..])),
            None => (raw, None),
        }
    };
    let port = match port {
        None | Some([]) => None,
        Some(p) => {
            if p.len() > 5 || !p.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let v = p.iter().fold(0u32, |a, &d| a * 10 + u32::from(d - b'0'));
            let v = u16::try_from(v).ok()?;
            (v != default_port).then_some(v)
        }
    };
    let name = if name.first() != Some(&b'[') {
        let n = name.strip_suffix(b".").unwrap_or(name);
        if n.is_empty() || !n.iter().all(|&b| is_unreserved(b)) {
            return None;
        }
        n
    } else {
        name
    };
    let name = crate::lower_into(name, out)?;
    Some(Host { name, port })
}

#[cfg(test)]
mod tests;
