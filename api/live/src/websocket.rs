//! The server side of a WebSocket (RFC 6455) carrying binary messages, over a connection
//! hyper has upgraded, holding no buffer while the socket is idle.
//!
//! Why not the WebSocket of axum (tungstenite underneath): its write buffer keeps the
//! capacity of the largest message it ever sent — for a sync socket, the whole document
//! sent as sync step 2 when it joined — for as long as the socket lives (tungstenite-rs
//! issue 500), and its read buffer is allocated up front and zero-filled before every
//! read. With thousands of mostly idle sockets per process those buffers were most of the
//! memory a socket cost. Here a read goes through a buffer on the stack of the poll that
//! makes it; only a frame that arrived in part is kept, in a vector that is dropped once
//! the frame is whole. A write sends the frame header and the payload — shared with every
//! other socket of the room — in one vectored write, copying nothing.
//!
//! Frame headers are parsed and formatted by tungstenite's `FrameHeader`; what is ours is
//! the I/O and the rules a server enforces: client frames are masked, no extension is
//! negotiated (reserved bits clear), control frames are short and whole, a fragmented
//! message continues before another starts, and no message exceeds the limit (refused as
//! soon as its header says so, before its payload is read).

use std::future::poll_fn;
use std::io::{self, Cursor, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Poll};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// Bytes read per system call; the buffer lives on the stack only while the read runs.
const READ_CHUNK: usize = 8 * 1024;

/// Frames per vectored write (two slices each: header and payload).
const WRITE_BATCH: usize = 64;

/// What a handshake request lacks, with the status it gets (400, or 426 for a version we
/// do not speak, which names the one we do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRefusal {
    pub status: StatusCode,
    pub reason: &'static str,
}

/// Checks an upgrade request's headers and returns the `Sec-WebSocket-Accept` value.
pub fn accept_key(headers: &HeaderMap) -> Result<HeaderValue, HandshakeRefusal> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let refuse = |reason| HandshakeRefusal {
        status: StatusCode::BAD_REQUEST,
        reason,
    };
    if !has_token(header::CONNECTION, "upgrade") {
        return Err(refuse("`Connection` must include `upgrade`"));
    }
    if !has_token(header::UPGRADE, "websocket") {
        return Err(refuse("`Upgrade` must be `websocket`"));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(HandshakeRefusal {
            status: StatusCode::UPGRADE_REQUIRED,
            reason: "`Sec-WebSocket-Version` must be 13",
        });
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| refuse("`Sec-WebSocket-Key` is missing"))?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    HeaderValue::from_str(&accept).map_err(|_| refuse("`Sec-WebSocket-Key` is invalid"))
}

/// What a socket runs on: an upgraded connection (boxed, so sessions need no type of it).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A socket's two halves (a session reads and writes from one task, never both at once).
pub struct Socket {
    pub reader: SocketReader,
    pub writer: SocketWriter,
}

pub type SocketReader = Reader<ReadHalf<Box<dyn Io>>>;
pub type SocketWriter = Writer<WriteHalf<Box<dyn Io>>>;

/// Wraps an upgraded connection; messages over `max_message` bytes end it with 1009.
pub fn split(io: impl Io, max_message: usize) -> Socket {
    let (read, write) = tokio::io::split(Box::new(io) as Box<dyn Io>);
    Socket {
        reader: Reader::new(read, max_message),
        writer: Writer::new(write),
    }
}

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Binary(Bytes),
    /// A text message (its content is not kept: the protocol has none).
    Text,
    /// A ping: answer with a pong carrying the same bytes.
    Ping(Bytes),
    Pong,
    /// The client closes (its code, if it gave one).
    Close(Option<u16>),
}

/// Why reading stopped: the close code to send, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub code: u16,
    pub reason: String,
}

impl ReadError {
    fn protocol(reason: &str) -> Self {
        Self {
            code: 1002,
            reason: reason.to_owned(),
        }
    }
}

/// The reading half: frames in, messages out.
pub struct Reader<R> {
    io: R,
    /// Bytes of a frame that has not arrived whole (empty, and unallocated, otherwise).
    partial: BytesMut,
    /// A fragmented message being gathered: its first frame's opcode and the payload so far.
    fragmented: Option<(Data, Vec<u8>)>,
    max_message: usize,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R, max_message: usize) -> Self {
        Self {
            io,
            partial: BytesMut::new(),
            fragmented: None,
            max_message,
        }
    }

    /// The next message; `Ok(None)` when the connection ended without a close frame.
    pub async fn next(&mut self) -> Result<Option<Incoming>, ReadError> {
        loop {
            if let Some(message) = self.parse()? {
                return Ok(Some(message));
            }
            if !matches!(self.read_some(true).await, Ok(n) if n > 0) {
                return Ok(None);
            }
        }
    }

    /// After the server's close frame: reads and discards whatever the client still sends
    /// until it ends the connection (which a client does once it has the close frame). A
    /// socket closed with data unread is reset instead, and a reset can reach the client
    /// before the close frame, hiding the code and reason.
    pub async fn drain(&mut self) {
        self.partial = BytesMut::new();
        self.fragmented = None;
        while matches!(self.read_some(false).await, Ok(n) if n > 0) {}
    }

    /// One read from the connection: into `partial` (`keep`), or discarded. A large frame
    /// under way has its room reserved in `partial` and is read straight into it; anything
    /// else goes through a buffer on the stack of this poll, so an idle socket holds none.
    async fn read_some(&mut self, keep: bool) -> io::Result<usize> {
        poll_fn(|cx| {
            if keep && self.partial.capacity() - self.partial.len() >= READ_CHUNK {
                return tokio_util::io::poll_read_buf(
                    Pin::new(&mut self.io),
                    cx,
                    &mut self.partial,
                );
            }
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
            if keep {
                self.partial.extend_from_slice(buf.filled());
            }
            Poll::Ready(Ok(buf.filled().len()))
        })
        .await
    }

    /// Takes whole frames from `partial` until one completes a message.
    fn parse(&mut self) -> Result<Option<Incoming>, ReadError> {
        loop {
            let mut cursor = Cursor::new(&self.partial[..]);
            let Some((header, length)) = FrameHeader::parse(&mut cursor)
                .map_err(|e| ReadError::protocol(&format!("bad frame header: {e}")))?
            else {
                return Ok(None);
            };
            let start = cursor.position() as usize;
            let Some(mask) = header.mask else {
                return Err(ReadError::protocol("client frames must be masked"));
            };
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(ReadError::protocol("no extension was negotiated"));
            }
            if matches!(header.opcode, OpCode::Control(_)) && (!header.is_final || length > 125) {
                return Err(ReadError::protocol(
                    "control frames are whole and at most 125 bytes",
                ));
            }
            if length >> 63 != 0 {
                return Err(ReadError::protocol(
                    "a frame length's top bit must be clear",
                ));
            }
            // A fragmented message's size so far counts for its data frames only (control
            // frames, at most 125 bytes, may come between them).
            let gathered = match (&self.fragmented, header.opcode) {
                (Some((_, so_far)), OpCode::Data(_)) => so_far.len(),
                _ => 0,
            };
            if length > (self.max_message - gathered.min(self.max_message)) as u64 {
                return Err(ReadError {
                    code: 1009,
                    reason: format!("message too large (limit {} bytes)", self.max_message),
                });
            }
            let end = start + length as usize;
            if self.partial.len() < end {
                // Room for the rest of the frame, at once.
                self.partial.reserve(end - self.partial.len());
                return Ok(None);
            }
            let mut payload = self.partial.split_to(end).split_off(start);
            if self.partial.is_empty() {
                // Let go of the allocation: an idle socket keeps nothing.
                self.partial = BytesMut::new();
            }
            unmask(&mut payload, mask);
            if let Some(message) = self.frame(header.is_final, header.opcode, payload.freeze())? {
                return Ok(Some(message));
            }
        }
    }

    fn frame(
        &mut self,
        fin: bool,
        opcode: OpCode,
        payload: Bytes,
    ) -> Result<Option<Incoming>, ReadError> {
        match opcode {
            OpCode::Control(control) => match control {
                Control::Ping => Ok(Some(Incoming::Ping(payload))),
                Control::Pong => Ok(Some(Incoming::Pong)),
                Control::Close => close_code(&payload).map(|code| Some(Incoming::Close(code))),
                Control::Reserved(_) => Err(ReadError::protocol("reserved opcode")),
            },
            OpCode::Data(Data::Continue) => {
                let Some((kind, mut so_far)) = self.fragmented.take() else {
                    return Err(ReadError::protocol("continuation of no message"));
                };
                so_far.extend_from_slice(&payload);
                if fin {
                    Ok(Some(message(kind, so_far.into())))
                } else {
                    self.fragmented = Some((kind, so_far));
                    Ok(None)
                }
            }
            OpCode::Data(Data::Reserved(_)) => Err(ReadError::protocol("reserved opcode")),
            OpCode::Data(kind) => {
                if self.fragmented.is_some() {
                    return Err(ReadError::protocol(
                        "a new message began before the last one ended",
                    ));
                }
                if fin {
                    Ok(Some(message(kind, payload)))
                } else {
                    self.fragmented = Some((kind, payload.to_vec()));
                    Ok(None)
                }
            }
        }
    }
}

/// A client's close frame: no body, or a code a peer may send and a UTF-8 reason.
fn close_code(payload: &[u8]) -> Result<Option<u16>, ReadError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ReadError::protocol(
            "a close frame's body starts with a 2-byte code",
        )),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            // RFC 6455 section 7.4: 1004-1006 and 1015 are never sent; below 1000 and
            // 1016-2999 are unassigned; 3000-4999 belong to applications.
            let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !sendable {
                return Err(ReadError::protocol(&format!(
                    "close code {code} may not be sent"
                )));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(ReadError {
                    code: 1007,
                    reason: "a close reason must be UTF-8".to_owned(),
                });
            }
            Ok(Some(code))
        }
    }
}

fn message(kind: Data, payload: Bytes) -> Incoming {
    match kind {
        Data::Binary => Incoming::Binary(payload),
        _ => Incoming::Text,
    }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// A message to the client.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Binary(Bytes),
    Pong(Bytes),
    /// A close frame: the code and a reason (cut to the 123 bytes a frame allows).
    Close(u16, String),
}

impl Outgoing {
    fn opcode_and_payload(&self) -> (OpCode, Bytes) {
        match self {
            Outgoing::Binary(payload) => (OpCode::Data(Data::Binary), payload.clone()),
            Outgoing::Pong(payload) => (OpCode::Control(Control::Pong), payload.clone()),
            Outgoing::Close(code, reason) => {
                let end = reason.floor_char_boundary(123);
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend_from_slice(&reason.as_bytes()[..end]);
                (OpCode::Control(Control::Close), payload.into())
            }
        }
    }
}

/// The writing half: each message one unmasked frame, written without copying its payload.
pub struct Writer<W> {
    io: W,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Self {
        Self { io }
    }

    /// Writes `messages` as frames, in as few system calls as the kernel allows.
    pub async fn send_all(&mut self, messages: &[Outgoing]) -> io::Result<()> {
        for batch in messages.chunks(WRITE_BATCH) {
            let frames: Vec<([u8; 10], usize, Bytes)> = batch
                .iter()
                .map(|message| {
                    let (opcode, payload) = message.opcode_and_payload();
                    let header = FrameHeader {
                        opcode,
                        ..FrameHeader::default()
                    };
                    let mut bytes = [0u8; 10];
                    let mut out = Cursor::new(&mut bytes[..]);
                    header
                        .format(payload.len() as u64, &mut out)
                        .expect("a header fits in 10 bytes");
                    let len = out.position() as usize;
                    (bytes, len, payload)
                })
                .collect();
            let mut slices: Vec<IoSlice<'_>> = frames
                .iter()
                .flat_map(|(header, len, payload)| {
                    [IoSlice::new(&header[..*len]), IoSlice::new(payload)]
                })
                .collect();
            let mut remaining: &mut [IoSlice<'_>] = &mut slices;
            while !remaining.is_empty() {
                let written =
                    poll_fn(|cx| Pin::new(&mut self.io).poll_write_vectored(cx, remaining)).await?;
                if written == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                IoSlice::advance_slices(&mut remaining, written);
            }
        }
        poll_fn(|cx| Pin::new(&mut self.io).poll_flush(cx)).await
    }

    /// Ends the connection (after a close frame).
    pub async fn shutdown(&mut self) {
        let _ = poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A client frame: masked with `mask`.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut frame = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        frame
    }

    async fn read_all(bytes: Vec<u8>, max: usize) -> Vec<Result<Option<Incoming>, ReadError>> {
        let (mut client, server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            // Byte by byte at first, to cut frames at every position.
            for chunk in bytes.chunks(3) {
                if client.write_all(chunk).await.is_err() {
                    return;
                }
            }
        });
        let mut reader = Reader::new(server, max);
        let mut out = vec![];
        loop {
            let next = reader.next().await;
            let end = !matches!(next, Ok(Some(_)));
            out.push(next);
            if end {
                break;
            }
        }
        writer.abort();
        out
    }

    #[tokio::test]
    async fn messages_arrive_whole_however_the_bytes_are_cut() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        let mut bytes = client_frame(true, 2, b"hello", mask);
        bytes.extend(client_frame(true, 9, b"ping!", mask));
        bytes.extend(client_frame(false, 2, b"frag", mask));
        bytes.extend(client_frame(true, 10, b"", mask)); // control frames may interleave
        bytes.extend(client_frame(false, 0, b"men", mask));
        bytes.extend(client_frame(true, 9, &[1; 100], mask));
        bytes.extend(client_frame(true, 10, b"", mask));
        bytes.extend(client_frame(true, 0, b"ted", mask));
        bytes.extend(client_frame(true, 2, &big, mask));
        bytes.extend(client_frame(true, 1, b"text", mask));
        bytes.extend(client_frame(true, 8, &[0x03, 0xe8, b'b', b'y', b'e'], mask));
        let got = read_all(bytes, 1 << 20).await;
        let got: Vec<_> = got.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(
            got,
            vec![
                Some(Incoming::Binary(Bytes::from_static(b"hello"))),
                Some(Incoming::Ping(Bytes::from_static(b"ping!"))),
                Some(Incoming::Pong),
                Some(Incoming::Ping(Bytes::from(vec![1; 100]))),
                Some(Incoming::Pong),
                Some(Incoming::Binary(Bytes::from_static(b"fragmented"))),
                Some(Incoming::Binary(big.into())),
                Some(Incoming::Text),
                Some(Incoming::Close(Some(1000))),
                None,
            ]
        );
    }

    #[tokio::test]
    async fn protocol_violations_and_oversized_messages_are_refused_with_a_code() {
        let mask = [1, 2, 3, 4];
        let unmasked = {
            let mut f = client_frame(true, 2, b"x", mask);
            f[1] &= 0x7f;
            f.drain(2..6);
            f
        };
        let rsv = {
            let mut f = client_frame(true, 2, b"x", mask);
            f[0] |= 0x40;
            f
        };
        let cases: Vec<(Vec<u8>, u16, &str)> = vec![
            (unmasked, 1002, "masked"),
            (rsv, 1002, "extension"),
            (client_frame(true, 3, b"x", mask), 1002, "opcode"),
            (client_frame(true, 0, b"x", mask), 1002, "continuation"),
            (client_frame(false, 9, b"x", mask), 1002, "control"),
            (client_frame(true, 9, &[0; 126], mask), 1002, "control"),
            (
                [
                    client_frame(false, 2, b"a", mask),
                    client_frame(true, 2, b"b", mask),
                ]
                .concat(),
                1002,
                "began",
            ),
            (client_frame(true, 2, &[0; 101], mask), 1009, "too large"),
            (client_frame(true, 8, &[0x03], mask), 1002, "2-byte code"),
            (
                client_frame(true, 8, &[0x03, 0xed], mask),
                1002,
                "1005 may not",
            ),
            (
                client_frame(true, 8, &[0x03, 0xe8, 0xff], mask),
                1007,
                "UTF-8",
            ),
            (
                {
                    let mut f = vec![0x82, 0x80 | 127];
                    f.extend_from_slice(&(1u64 << 63).to_be_bytes());
                    f.extend_from_slice(&mask);
                    f
                },
                1002,
                "top bit",
            ),
            (
                [
                    client_frame(false, 2, &[0; 60], mask),
                    client_frame(true, 0, &[0; 60], mask),
                ]
                .concat(),
                1009,
                "too large",
            ),
        ];
        for (bytes, code, reason) in cases {
            let got = read_all(bytes, 100).await;
            let error = got.last().unwrap().clone().unwrap_err();
            assert_eq!(error.code, code, "{error:?}");
            assert!(error.reason.contains(reason), "{error:?}");
        }
    }

    #[tokio::test]
    async fn control_frames_inside_a_message_near_the_limit_are_no_part_of_its_size() {
        let mask = [5, 6, 7, 8];
        let bytes = [
            client_frame(false, 2, &[1; 60], mask),
            client_frame(true, 9, &[2; 100], mask),
            client_frame(true, 0, &[3; 40], mask),
        ]
        .concat();
        let got = read_all(bytes, 100).await;
        assert_eq!(got[0], Ok(Some(Incoming::Ping(Bytes::from(vec![2; 100])))));
        assert!(matches!(&got[1], Ok(Some(Incoming::Binary(b))) if b.len() == 100));
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_from_its_header_alone() {
        let (mut client, server) = tokio::io::duplex(1024);
        // Only the header of a 1 GiB frame: the refusal must not wait for the payload.
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 30).to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 0]);
        client.write_all(&header).await.unwrap();
        let mut reader = Reader::new(server, 1 << 20);
        let error = reader.next().await.unwrap_err();
        assert_eq!(error.code, 1009);
        assert!(reader.partial.capacity() < 1024, "nothing reserved for it");
    }

    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client
            .write_all(&client_frame(true, 2, &[7; 50_000], [9, 9, 9, 9]))
            .await
            .unwrap();
        let mut reader = Reader::new(server, 1 << 20);
        assert!(matches!(reader.next().await, Ok(Some(Incoming::Binary(b))) if b.len() == 50_000));
        assert_eq!(reader.partial.capacity(), 0);
        assert!(reader.fragmented.is_none());
    }

    #[tokio::test]
    async fn frames_written_are_what_a_client_reads() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut writer = Writer::new(server);
        let big = Bytes::from(vec![5u8; 70_000]);
        writer
            .send_all(&[
                Outgoing::Binary(Bytes::from_static(b"one")),
                Outgoing::Binary(big.clone()),
                Outgoing::Pong(Bytes::from_static(b"p")),
                Outgoing::Close(4403, "é".repeat(100)),
            ])
            .await
            .unwrap();
        drop(writer);
        // Read it back with tungstenite as a client would.
        let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
            client,
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            Message::Binary(Bytes::from_static(b"one"))
        );
        assert_eq!(socket.next().await.unwrap().unwrap(), Message::Binary(big));
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            Message::Pong(Bytes::from_static(b"p"))
        );
        let Message::Close(Some(close)) = socket.next().await.unwrap().unwrap() else {
            panic!("a close frame")
        };
        assert_eq!(u16::from(close.code), 4403);
        assert_eq!(close.reason.len(), 122, "cut on a character boundary");
    }

    #[test]
    fn handshakes_are_checked() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        headers.insert(header::UPGRADE, "websocket".parse().unwrap());
        headers.insert(header::SEC_WEBSOCKET_VERSION, "13".parse().unwrap());
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        // RFC 6455's own example.
        assert_eq!(
            accept_key(&headers).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let mut old = headers.clone();
        old.insert(header::SEC_WEBSOCKET_VERSION, "8".parse().unwrap());
        assert_eq!(
            accept_key(&old).unwrap_err().status,
            StatusCode::UPGRADE_REQUIRED
        );
        let mut plain = headers.clone();
        plain.remove(header::UPGRADE);
        assert_eq!(
            accept_key(&plain).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let mut keyless = headers;
        keyless.remove(header::SEC_WEBSOCKET_KEY);
        assert!(accept_key(&keyless).unwrap_err().reason.contains("Key"));
    }
}
