//! Query parameters of the HTTP endpoints: percent-decoding, finding a
//! parameter, integers, the `keys=` list of `/batch_query_keys` and the
//! `cursor` / `limit` paging of `/get_all_keys`. Every failure is a 400
//! answer naming the parameter.
//!
//! Query values are percent-decoded (`+` is a space). In `keys=` the literal
//! commas separate keys and each piece is decoded on its own, so `%2C`
//! carries a comma inside a key.

use super::routes::Resp;

/// Default and largest page of `/get_all_keys`.
pub const DEFAULT_KEYS_LIMIT: u32 = 1000;
pub const MAX_KEYS_LIMIT: u32 = 100_000;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `application/x-www-form-urlencoded` text: `%XX` escapes and `+`
/// for space. `None` on a malformed escape or when the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The raw (still encoded) value of the first `name` parameter, if any.
/// Parameter names are compared after decoding.
pub(super) fn raw_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').filter(|p| !p.is_empty()).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (percent_decode(k).as_deref() == Some(name)).then_some(v)
    })
}

/// A decoded parameter: `Ok(None)` when absent, 400 when badly encoded.
pub(super) fn param(query: &str, name: &str) -> Result<Option<String>, Resp> {
    match raw_param(query, name) {
        None => Ok(None),
        Some(v) => percent_decode(v).map(Some).ok_or_else(|| {
            Resp::error(
                400,
                &format!("query parameter '{name}' is not valid percent-encoded UTF-8"),
            )
        }),
    }
}

/// A non-negative integer parameter: `Ok(None)` when absent.
pub(super) fn u64_param(query: &str, name: &str) -> Result<Option<u64>, Resp> {
    match param(query, name)? {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Resp::error(400, &format!("query parameter '{name}' must be a non-negative integer"))),
    }
}

/// The keys of `keys=a,b,...`: commas separate, each piece decoded alone,
/// the count within the batch limit.
pub(super) fn keys_param(query: &str) -> Result<Vec<String>, Resp> {
    let raw = raw_param(query, "keys").ok_or_else(|| Resp::error(400, "missing query parameter 'keys'"))?;
    if raw.is_empty() {
        return Err(Resp::error(400, "query parameter 'keys' is empty"));
    }
    let keys = raw
        .split(',')
        .map(percent_decode)
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| Resp::error(400, "query parameter 'keys' is not valid percent-encoded UTF-8"))?;
    if let Err(e) = mmc_wire::validate_batch_len(keys.len()) {
        return Err(Resp::error(400, &format!("query parameter 'keys': {e}")));
    }
    Ok(keys)
}

/// One page request of `/get_all_keys`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Page {
    /// List keys after this one (`None`: from the first key).
    pub after: Option<String>,
    pub limit: u32,
}

/// `cursor` is the `next_cursor` of the previous page: the last key
/// returned, hex-encoded (absent, empty or the former first-page `0`
/// starts from the first key). `limit` defaults to [`DEFAULT_KEYS_LIMIT`]
/// and is capped at [`MAX_KEYS_LIMIT`]; 0 is refused.
pub(super) fn page_params(query: &str) -> Result<Page, Resp> {
    let after = match param(query, "cursor")?.as_deref() {
        None | Some("") | Some("0") => None,
        Some(c) => Some(hex_key(c).ok_or_else(|| {
            Resp::error(
                400,
                "query parameter 'cursor' is not a next_cursor of /get_all_keys (hex-encoded key)",
            )
        })?),
    };
    let limit = u64_param(query, "limit")?.unwrap_or(DEFAULT_KEYS_LIMIT as u64);
    if limit == 0 {
        return Err(Resp::error(
            400,
            &format!("query parameter 'limit' must be between 1 and {MAX_KEYS_LIMIT}"),
        ));
    }
    Ok(Page {
        after,
        limit: limit.min(MAX_KEYS_LIMIT as u64) as u32,
    })
}

/// The `next_cursor` naming `key`: its bytes in lower-case hex.
pub(super) fn cursor_of(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The key a hex `next_cursor` encodes.
pub(super) fn hex_key(c: &str) -> Option<String> {
    if !c.len().is_multiple_of(2) || !c.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&c[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(percent_decode("a%20b+c%2Cd").as_deref(), Some("a b c,d"));
        assert_eq!(percent_decode("%C3%BC").as_deref(), Some("ü"));
        assert_eq!(percent_decode(""), Some(String::new()));
        for bad in ["%", "%4", "%zz", "%FF", "a%G1"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn params_and_paging() {
        assert_eq!(param("a=1&key=x%20y", "key").ok().flatten().as_deref(), Some("x y"));
        assert_eq!(param("k%65y=v", "key").ok().flatten().as_deref(), Some("v"));
        assert!(param("key=%zz", "key").is_err());
        assert_eq!(u64_param("limit=7", "limit").ok().flatten(), Some(7));
        assert!(u64_param("limit=-1", "limit").is_err());
        assert_eq!(keys_param("keys=a,b%2Cc").ok(), Some(vec!["a".into(), "b,c".into()]));
        assert_eq!(
            page_params("").ok(),
            Some(Page {
                after: None,
                limit: DEFAULT_KEYS_LIMIT
            })
        );
        let c = cursor_of("k/ü");
        assert_eq!(hex_key(&c).as_deref(), Some("k/ü"));
        assert_eq!(
            page_params(&format!("cursor={c}&limit=9999999")).ok(),
            Some(Page {
                after: Some("k/ü".into()),
                limit: MAX_KEYS_LIMIT
            })
        );
        for bad in ["cursor=abc", "cursor=zz", "limit=0", "limit=x"] {
            assert_eq!(page_params(bad).err().map(|r| r.status), Some(400), "{bad}");
        }
    }
}
