//! Control-RPC framing.
//!
//! Every control message travels in one frame; many requests share one TCP
//! connection and are answered out of order, matched by request id.
//!
//! ```text
//! offset  size  field
//! 0       4     len: bytes that follow this field (u32, little endian), 10..=MAX_FRAME
//! 4       1     version: FRAME_VERSION (2; 1 sent errors as enum variants)
//! 5       1     kind: 0 = request, 1 = response
//! 6       8     request id (u64, little endian), echoed by the response
//! 14      len-10 payload: a postcard-encoded `Request` or `Response`
//! ```
//!
//! The length is checked against [`MAX_FRAME`] before anything is allocated,
//! and the version and kind before the payload is decoded. Any violation is a
//! [`FrameError`]: the reader closes that one connection.

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Version of the control protocol: this framing and the postcard encoding
/// of `message::{Request, Response}` (errors as `{code, detail}` since 2).
/// Announced in the authentication challenge; a peer of another version is
/// refused with a clear error before any frame.
pub const FRAME_VERSION: u8 = 2;
/// Largest frame accepted (after the length field): 64 MiB.
pub const MAX_FRAME: usize = 64 << 20;
/// Bytes of header after the length field: version, kind, request id.
pub const HEADER_AFTER_LEN: usize = 10;
/// Most payload bytes [`read_frame`] reserves before they arrive.
const READ_CHUNK: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Request = 0,
    Response = 1,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {0} outside 10..={MAX_FRAME}")]
    BadLength(usize),
    #[error("unsupported frame version {0} (expected {FRAME_VERSION})")]
    BadVersion(u8),
    #[error("unknown frame kind {0}")]
    BadKind(u8),
    #[error("undecodable payload: {0}")]
    BadPayload(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame not completed within {0:?} of its first byte")]
    Timeout(std::time::Duration),
}

/// One decoded frame with its payload still encoded.
#[derive(Debug)]
pub struct Frame {
    pub kind: FrameKind,
    pub id: u64,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, FrameError> {
        postcard::from_bytes(&self.payload).map_err(|e| FrameError::BadPayload(e.to_string()))
    }
}

/// Encodes `msg` into a complete frame, ready to write.
pub fn encode<T: Serialize>(kind: FrameKind, id: u64, msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; 4 + HEADER_AFTER_LEN];
    buf[4] = FRAME_VERSION;
    buf[5] = kind as u8;
    buf[6..14].copy_from_slice(&id.to_le_bytes());
    let mut buf = postcard::to_extend(msg, buf).map_err(|e| FrameError::BadPayload(e.to_string()))?;
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(FrameError::BadLength(len));
    }
    buf[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(buf)
}

/// Checks the header after the length field; returns the kind and request id.
pub fn parse_head(head: &[u8; HEADER_AFTER_LEN]) -> Result<(FrameKind, u64), FrameError> {
    if head[0] != FRAME_VERSION {
        return Err(FrameError::BadVersion(head[0]));
    }
    let kind = match head[1] {
        0 => FrameKind::Request,
        1 => FrameKind::Response,
        k => return Err(FrameError::BadKind(k)),
    };
    Ok((kind, u64::from_le_bytes(head[2..10].try_into().expect("8 bytes"))))
}

/// Reads one frame. Returns `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut len_buf = [0u8; 4];
    match r.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len_buf) as usize;
    if !(HEADER_AFTER_LEN..=MAX_FRAME).contains(&len) {
        return Err(FrameError::BadLength(len));
    }
    let mut head = [0u8; HEADER_AFTER_LEN];
    r.read_exact(&mut head).await?;
    let (kind, id) = parse_head(&head)?;
    // The buffer grows with the bytes that actually arrive, never with the
    // announced length alone: a peer announcing 64 MiB and then falling
    // silent costs one chunk, not 64 MiB.
    let want = len - HEADER_AFTER_LEN;
    let mut payload = Vec::with_capacity(want.min(READ_CHUNK));
    let got = r.take(want as u64).read_to_end(&mut payload).await?;
    if got < want {
        return Err(FrameError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("end of stream after {got} of {want} payload bytes"),
        )));
    }
    Ok(Some(Frame { kind, id, payload }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let msg = (7u32, String::from("hello"));
        let bytes = encode(FrameKind::Response, 42, &msg).unwrap();
        let mut cur = std::io::Cursor::new(bytes);
        let f = read_frame(&mut cur).await.unwrap().unwrap();
        assert_eq!(f.kind, FrameKind::Response);
        assert_eq!(f.id, 42);
        assert_eq!(f.decode::<(u32, String)>().unwrap(), msg);
        assert!(read_frame(&mut cur).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rejects_bad_frames_before_allocating() {
        let mut huge = std::io::Cursor::new(u32::MAX.to_le_bytes().to_vec());
        assert!(matches!(read_frame(&mut huge).await, Err(FrameError::BadLength(_))));
        let mut tiny = std::io::Cursor::new(3u32.to_le_bytes().to_vec());
        assert!(matches!(read_frame(&mut tiny).await, Err(FrameError::BadLength(3))));
        let mut bytes = encode(FrameKind::Request, 1, &1u8).unwrap();
        bytes[4] = 9;
        let mut cur = std::io::Cursor::new(bytes);
        assert!(matches!(read_frame(&mut cur).await, Err(FrameError::BadVersion(9))));
        let mut bytes = encode(FrameKind::Request, 1, &1u8).unwrap();
        bytes[5] = 7;
        let mut cur = std::io::Cursor::new(bytes);
        assert!(matches!(read_frame(&mut cur).await, Err(FrameError::BadKind(7))));
    }

    #[tokio::test]
    async fn announced_length_alone_allocates_one_chunk() {
        let mut bytes = ((MAX_FRAME) as u32).to_le_bytes().to_vec();
        bytes.extend([FRAME_VERSION, 0]);
        bytes.extend(7u64.to_le_bytes());
        bytes.extend([1, 2, 3]);
        let (mut w, mut r) = tokio::io::duplex(1 << 16);
        tokio::io::AsyncWriteExt::write_all(&mut w, &bytes).await.unwrap();
        drop(w);
        let e = read_frame(&mut r).await.unwrap_err();
        assert!(e.to_string().contains("after 3 of"), "{e}");
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let bytes = encode(FrameKind::Request, 1, &String::from("abc")).unwrap();
        let mut cur = std::io::Cursor::new(bytes[..bytes.len() - 1].to_vec());
        assert!(matches!(read_frame(&mut cur).await, Err(FrameError::Io(_))));
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut cur = std::io::Cursor::new(data);
                if let Ok(Some(f)) = read_frame(&mut cur).await {
                    let _ = f.decode::<crate::message::Request>();
                }
            });
        }
    }
}
