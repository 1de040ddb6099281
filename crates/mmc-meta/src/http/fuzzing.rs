//! Fuzzing entry point for what the HTTP endpoint does itself, now that
//! hyper parses HTTP/1.1: checking a request ([`super::routes::admit`]),
//! the bearer token, routing any path with any query to its handler
//! ([`super::routes::route`], against a small in-memory MetaService), and
//! decoding query parameters ([`super::params`]).
//!
//! [`http_request`] reads the input loosely as a request head: the first
//! line's first two words are the method and the target, the following
//! `name: value` lines are header fields (those `http` accepts); bytes that
//! do not form a method or a URI skip routing but still go through the
//! parameter decoders. The fuzz target `http_request` (under `fuzz/`) and
//! the corpus replay test `tests/fuzz_corpus.rs` call this same function,
//! so the corpus of raw request heads kept from the hand-written parser
//! stays meaningful.
//!
//! Not part of the API: hidden from the documentation and free to change.

use super::params::{keys_param, page_params, param, percent_decode, raw_param, u64_param};
use super::routes::{self, JSON};
use crate::clock::SystemClock;
use crate::server::Server;
use crate::state::{MetaParams, MetaState};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use mmc_wire::message::{AllocItem, RegisterReq, SegmentDesc};
use std::sync::{Arc, OnceLock};

/// The token of the second fuzzing server (the first has none).
const TOKEN: &str = "fuzzing-token-0123456789";

/// Two MetaServices with one provider and a few keys: without a token and
/// with [`TOKEN`].
fn servers() -> &'static [Arc<Server>; 2] {
    static SERVERS: OnceLock<[Arc<Server>; 2]> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let make = |token: Option<&str>| {
            let state = Arc::new(MetaState::new(MetaParams::default(), Arc::new(SystemClock::default())));
            if let Ok((id, _)) = state.register(&RegisterReq {
                host_id: 7,
                transfer_addr: "127.0.0.1:7000".into(),
                segment: Some(SegmentDesc {
                    name: "seg0".into(),
                    medium: mmc_wire::Medium::Dram,
                    size: 64 << 20,
                    nonce: 0,
                }),
                prev_service_id: None,
                recovering: false,
            }) {
                let keys = ["a", "k,2", "hello world/ü"];
                let items: Vec<AllocItem> = keys
                    .iter()
                    .map(|k| AllocItem {
                        key: k.to_string(),
                        size: 100,
                        replicas: 1,
                        preferred: vec![],
                    })
                    .collect();
                let _ = state.alloc(id, &items);
                let _ = state.finish(id, &keys.map(String::from), &[]);
            }
            Server::with_options(
                state,
                std::time::Duration::ZERO,
                false,
                token.map(mmc_wire::auth::ClusterToken::new),
                64,
                std::time::Duration::from_secs(10),
            )
        };
        [make(None), make(Some(TOKEN))]
    })
}

/// Percent-encodes every byte of `s`: decoding it must give `s` back.
fn encode_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// The query parameters the endpoints read, with the checks they make.
fn check_query(q: &str) {
    if let Ok(Some(key)) = param(q, "key") {
        let _ = mmc_wire::validate_key(&key);
    }
    if let Some(raw) = raw_param(q, "keys") {
        let keys: Option<Vec<String>> = raw.split(',').map(percent_decode).collect();
        let parsed = keys_param(q);
        if keys.is_none() {
            assert!(parsed.is_err(), "keys {raw:?} decoded badly but accepted");
        }
        if let Err(r) = parsed {
            assert_eq!(r.status, 400);
        }
    }
    for name in ["cursor", "limit", "service_id"] {
        if let Err(r) = u64_param(q, name) {
            assert_eq!(r.status, 400);
        }
    }
    match page_params(q) {
        Ok(p) => assert!(p.limit >= 1 && p.limit <= super::MAX_KEYS_LIMIT),
        Err(r) => assert_eq!(r.status, 400),
    }
    for part in q.split('&') {
        if let Some(d) = percent_decode(part) {
            assert!(d.len() <= part.len(), "decoding grew {part:?}");
            assert_eq!(percent_decode(&encode_all(&d)).as_deref(), Some(d.as_str()));
        }
    }
}

/// Splits the input into a method, a target and header fields, as far as
/// it has them.
fn head(data: &[u8]) -> Option<(Method, Uri, HeaderMap)> {
    let mut lines = data.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.find(|l| !l.is_empty())?;
    let mut words = first.split(|&b| b == b' ');
    let method = Method::from_bytes(words.next()?).ok()?;
    let uri = Uri::try_from(words.next()?).ok()?;
    let mut headers = HeaderMap::new();
    for l in lines.take_while(|l| !l.is_empty()).take(super::MAX_HEADERS) {
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&l[..colon]),
            HeaderValue::from_bytes(l[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    Some((method, uri, headers))
}

/// One fuzz input: a request head as it might arrive.
pub fn http_request(data: &[u8]) {
    // Any text percent-encodes and decodes back to itself.
    let text = String::from_utf8_lossy(data);
    assert_eq!(percent_decode(&encode_all(&text)).as_deref(), Some(&*text));
    check_query(&text);

    let Some((method, uri, headers)) = head(data) else {
        return;
    };
    check_query(uri.query().unwrap_or_default());
    let target = match routes::admit(&method, &uri, &headers) {
        Err(r) => {
            assert!(r.close, "a refused request must close the connection");
            assert!(matches!(r.status, 400 | 405), "{}", r.status);
            return;
        }
        Ok(t) => t,
    };
    assert!(target.path.starts_with('/'), "path {:?}", target.path);
    assert!(!target.path.contains(['?', '#']) && !target.query.contains('#'));
    for server in servers() {
        let r = match routes::unauthorized(server, &target, &headers) {
            Some(r) => {
                assert!(server.token().is_some() && r.bearer_challenge && r.status == 401);
                r
            }
            None => routes::route(server, &target, "leader"),
        };
        assert!(
            matches!(r.status, 200 | 400 | 401 | 404 | 503),
            "{} {}: {}",
            target.path,
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        if r.content_type == JSON {
            let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON answer");
            if r.status >= 400 {
                assert!(v["error"].is_string(), "{v}");
            }
        }
    }
}
