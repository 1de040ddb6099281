//! Data-transfer protocol spoken by each memory-providing LocalService's
//! transfer server (the cross-host path).
//!
//! A connection carries a sequence of requests, one at a time:
//!
//! ```text
//! request header, 32 bytes, little endian
//! 0   4  magic  b"MMCT"
//! 4   1  version (2)
//! 5   1  op: 1 = read, 2 = write
//! 6   2  reserved (0)
//! 8   4  segment id the client believes it talks to (the owner's service id)
//! 12  4  reserved (0)
//! 16  8  offset inside the segment
//! 24  8  length
//! write: `length` payload bytes follow the header; the server copies them
//!        straight from the socket into the segment.
//! reply, 64 bytes: i32 result code (0 = OK), 60 bytes reserved (0); for a
//!        successful read the `length` bytes follow the reply, sent straight
//!        from the segment.
//! ```
//!
//! The reply is 64 bytes (it was 8 in version 1) so that a read's payload
//! starts a multiple of 64 bytes after it. The kernel copies the payload
//! from the segment (page-aligned objects) into socket buffers that the
//! reply began, with `rep movsb`, and on AMD Zen 3 and Zen 4 that runs at
//! 3-9 GB/s instead of 18-25 when the destination is 1-63 bytes ahead of
//! the source modulo a page: with an 8-byte reply a cross-host get of
//! 1 MiB took 840-1080 us p50 there, with 64 bytes 290-350 us
//! (docs/benchmarks.md, run U). On the write side the 32-byte request
//! header puts the payload 32 bytes into socket buffers, and the server's
//! copy from there into the page-aligned segment goes backwards modulo a
//! page (destination behind the source), which runs at full speed.
//!
//! The server checks the magic, version, op, segment id and that
//! `offset + length` lies inside the segment before touching memory; any
//! violation answers INVALID_PARAM and closes that one connection.

use crate::types::ServiceId;

pub const MAGIC: [u8; 4] = *b"MMCT";
pub const VERSION: u8 = 2;
pub const HEADER_LEN: usize = 32;
pub const REPLY_LEN: usize = 64;
// A read's payload must start a multiple of 64 bytes after its reply (see
// the module comment).
const _: () = assert!(REPLY_LEN.is_multiple_of(64));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read = 1,
    Write = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub op: Op,
    pub segment: ServiceId,
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("bad magic {0:?}")]
    Magic([u8; 4]),
    #[error("unsupported transfer version {0}")]
    Version(u8),
    #[error("unknown transfer op {0}")]
    Op(u8),
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.op as u8;
        b[8..12].copy_from_slice(&self.segment.to_le_bytes());
        b[16..24].copy_from_slice(&self.offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Self, HeaderError> {
        let magic: [u8; 4] = b[0..4].try_into().expect("4 bytes");
        if magic != MAGIC {
            return Err(HeaderError::Magic(magic));
        }
        if b[4] != VERSION {
            return Err(HeaderError::Version(b[4]));
        }
        let op = match b[5] {
            1 => Op::Read,
            2 => Op::Write,
            o => return Err(HeaderError::Op(o)),
        };
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Ok(Header {
            op,
            segment: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            offset: u64_at(16),
            len: u64_at(24),
        })
    }
}

pub fn encode_reply(code: i32) -> [u8; REPLY_LEN] {
    let mut b = [0u8; REPLY_LEN];
    b[0..4].copy_from_slice(&code.to_le_bytes());
    b
}

pub fn decode_reply(b: &[u8; REPLY_LEN]) -> i32 {
    i32::from_le_bytes(b[0..4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_rejects() {
        let h = Header {
            op: Op::Write,
            segment: 3,
            offset: 4096,
            len: 1 << 20,
        };
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
        let mut b = h.encode();
        b[0] = b'X';
        assert!(matches!(Header::decode(&b), Err(HeaderError::Magic(_))));
        let mut b = h.encode();
        b[5] = 9;
        assert_eq!(Header::decode(&b), Err(HeaderError::Op(9)));
        assert_eq!(decode_reply(&encode_reply(-3000)), -3000);
    }
}
