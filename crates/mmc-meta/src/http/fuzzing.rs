//! Fuzzing entry point for the HTTP request parser of [`super`].
//!
//! [`http_request`] feeds arbitrary bytes through the same steps a
//! connection takes before routing (skip blank lines, find the end of the
//! head, parse it, read the query parameters the endpoints read), for as
//! many pipelined requests as the bytes hold, and checks properties of the
//! pieces. The fuzz target `http_request` (under `fuzz/`) and the corpus
//! replay test `tests/fuzz_corpus.rs` call this same function.
//!
//! A child of the `http` module so it can reach the private parser
//! without making it part of the crate's API. Not part of the API itself:
//! hidden from the documentation and free to change.

use super::{find_head_end, param, parse_head, percent_decode, raw_param, too_large, u64_param, MAX_HEAD};

/// Percent-encodes every byte of `s`: decoding it must give `s` back.
fn encode_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Checks the head-end search the way [`super::read_head`] uses it: after
/// a read that found no end, the next search starts 3 bytes before the old
/// end of the buffer, and must find the same end as a search of the whole.
fn check_incremental_search(buf: &[u8]) {
    let whole = find_head_end(buf, 0);
    if let Some(end) = whole {
        assert!(end <= buf.len() && end >= 2, "head end {end} outside the buffer");
        assert_eq!(buf[end - 1], b'\n');
    }
    let mut k = 0usize;
    let mut step = 1usize;
    while k < buf.len() {
        if find_head_end(&buf[..k], 0).is_none() {
            assert_eq!(find_head_end(buf, k.saturating_sub(3)), whole, "split at {k}");
        }
        k += step;
        step = step * 2 + 1;
    }
}

/// The query parameters the endpoints read, with the checks they make.
fn check_query(q: &str) {
    if let Ok(Some(key)) = param(q, "key") {
        let _ = mmc_wire::validate_key(&key);
    }
    if let Some(raw) = raw_param(q, "keys") {
        let keys: Option<Vec<String>> = raw.split(',').map(percent_decode).collect();
        if let Some(keys) = keys {
            let _ = mmc_wire::validate_batch_len(keys.len());
        }
    }
    let _ = u64_param(q, "cursor");
    let _ = u64_param(q, "limit");
    for part in q.split('&') {
        if let Some(d) = percent_decode(part) {
            assert!(d.len() <= part.len(), "decoding grew {part:?}");
            assert_eq!(percent_decode(&encode_all(&d)).as_deref(), Some(d.as_str()));
        }
    }
}

/// One fuzz input: bytes arriving on an HTTP connection.
pub fn http_request(data: &[u8]) {
    check_incremental_search(data);
    // Any text percent-encodes and decodes back to itself.
    let text = String::from_utf8_lossy(data);
    assert_eq!(percent_decode(&encode_all(&text)).as_deref(), Some(&*text));

    let mut buf = data.to_vec();
    for _ in 0..64 {
        let blank = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
        buf.drain(..blank);
        let Some(end) = find_head_end(&buf, 0) else {
            if buf.len() > MAX_HEAD {
                let r = too_large(&buf);
                assert!(matches!(r.status, 414 | 431) && r.close);
            }
            return;
        };
        if end > MAX_HEAD {
            let r = too_large(&buf);
            assert!(matches!(r.status, 414 | 431) && r.close);
            return;
        }
        let head: Vec<u8> = buf.drain(..end).collect();
        match parse_head(&head) {
            Err(resp) => {
                assert!(resp.close, "a refused head must close the connection");
                assert!(resp.status >= 400);
                let _ = resp.encode();
                return;
            }
            Ok(req) => {
                assert!(req.path.starts_with('/'), "path {:?}", req.path);
                assert!(!req.path.contains(['?', '#']) && !req.query.contains('#'));
                check_query(&req.query);
                if !req.keep_alive {
                    return;
                }
            }
        }
    }
}
