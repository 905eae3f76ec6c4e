//! Byte sizes and durations written the way people write them: `262144`, `64KiB`, `4MiB`,
//! `1.5MB`; `500ms`, `10s`, `5m`.

use std::time::Duration;

/// Parses a byte size: a number with an optional unit `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`,
/// `G`/`GB`/`GiB` (case-insensitive; `K`, `KiB` and `KB` all mean 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?} (use B, KiB, MiB or GiB)"
            ));
        }
    };
    let bad = || format!("{text:?} is not a size (examples: 262144, 64KiB, 4MiB)");
    let value = if let Some((whole, frac)) = number.split_once('.') {
        // Exact decimal: whole * m + frac * m / 10^len(frac), rounded down.
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        if frac.is_empty() || frac.len() > 9 {
            return Err(bad());
        }
        let digits: u64 = frac.parse().map_err(|_| bad())?;
        let scale = 10u64.pow(frac.len() as u32);
        whole
            .checked_mul(multiplier)
            .and_then(|w| {
                w.checked_add(
                    u64::try_from(u128::from(digits) * u128::from(multiplier) / u128::from(scale))
                        .ok()?,
                )
            })
            .ok_or_else(|| format!("{text:?} is too large"))?
    } else {
        let n: u64 = number.parse().map_err(|_| bad())?;
        n.checked_mul(multiplier)
            .ok_or_else(|| format!("{text:?} is too large"))?
    };
    Ok(value)
}

/// Deserializes a byte size written as a number or as text (`"50GiB"`, [`parse_size`]).
pub fn deserialize_size<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<u64, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match <Size as serde::Deserialize>::deserialize(deserializer)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(text) => parse_size(&text).map_err(serde::de::Error::custom),
    }
}

/// Parses a duration: a whole number with unit `ms`, `s`, `m` or `h` (a bare number is
/// seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (examples: 500ms, 10s, 5m)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        other => Err(format!(
            "unknown duration unit {other:?} in {text:?} (use ms, s, m or h)"
        )),
    }
}

/// Formats a byte count for people: `64.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("262144"), Ok(262_144));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("64k"), Ok(65_536));
        assert_eq!(parse_size("4 MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("0.5k"), Ok(512));
        assert!(parse_size("").is_err());
        assert!(
            parse_size("12XB")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_size("abc").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(
            parse_size("99999999999G")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5 days").is_err());
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(10), "10 B");
    }
}
