//! Human-readable byte sizes: `4096`, `64KB`, `128MB`, `2.5G`, `1TB`, `1GiB`.
//! Units are powers of 1024 whether or not an `i` is written. [`ByteSize`]
//! is a size field of the configuration, read from a number or such a text.

use serde::{Deserialize, Serialize};

/// Parses a size; the error names the text that could not be read.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("`{text}` is not a size (examples: 4096, 512MB, 2.5G, 1TB)");
    if num.is_empty() {
        return Err(bad());
    }
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(bad()),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(|| format!("`{text}` overflows 64 bits"));
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let v = f * mult as f64;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(format!("`{text}` overflows 64 bits"));
    }
    Ok(v as u64)
}

/// Formats a size with the largest unit that divides it exactly.
pub fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, "TB"), (30, "GB"), (20, "MB"), (10, "KB")] {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// A byte size written as a number of bytes or a string such as `"512MB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SizeRepr", into = "SizeRepr")]
pub struct ByteSize(pub u64);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    Int(u64),
    Str(String),
}

impl TryFrom<SizeRepr> for ByteSize {
    type Error = String;
    fn try_from(r: SizeRepr) -> Result<Self, String> {
        match r {
            SizeRepr::Int(n) => Ok(ByteSize(n)),
            SizeRepr::Str(s) => parse_size(&s).map(ByteSize),
        }
    }
}

impl From<ByteSize> for SizeRepr {
    fn from(b: ByteSize) -> Self {
        SizeRepr::Str(format_size(b.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("128MB").unwrap(), 128 << 20);
        assert_eq!(parse_size("128mb").unwrap(), 128 << 20);
        assert_eq!(parse_size("1TB").unwrap(), 1 << 40);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2.5G").unwrap(), 5 << 29);
        assert!(parse_size("").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("1.2.3G").is_err());
        assert!(parse_size("99999999999TB").is_err());
        assert_eq!(format_size(512 << 20), "512MB");
        assert_eq!(format_size(1000), "1000");
        assert_eq!(parse_size(&format_size(3 << 30)).unwrap(), 3 << 30);
    }
}
