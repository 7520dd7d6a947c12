//! Duration strings in the style Roma accepts for its `TimeoutDuration` tag (absl's
//! `ParseDuration`): a sequence of decimal numbers with units, such as `300ms`, `1.5s`, `2h45m`.

use std::time::Duration;

/// Parses `"300ms"`, `"1.5s"`, `"2h45m"`, `"100us"`, `"250ns"`. Units: `ns`, `us`, `µs`, `ms`,
/// `s`, `m`, `h`. A bare `0` is zero. Negative values, `inf`, and values past ~584 years are
/// rejected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration `{text}` lacks a unit (e.g. 300ms)"))?;
        if num_len == 0 {
            return Err(format!(
                "duration `{text}` is not a number followed by a unit"
            ));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("bad number in duration `{text}`"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("unknown unit `{other}` in duration `{text}`")),
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    if !total.is_finite() || total > u64::MAX as f64 / 1e9 {
        return Err(format!("duration `{text}` is too large"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way [`parse_duration`] reads it back (`300ms`, `1.5s`).
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else if d.as_nanos().is_multiple_of(1_000) {
        format!("{}us", d.as_micros())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_roma_forms() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(
            parse_duration("2h45m"),
            Ok(Duration::from_secs(2 * 3600 + 45 * 60))
        );
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "ms", "300", "-1s", "1x", "1e400s", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn format_round_trips(n in 0u64..10_000_000_000_000) {
            let d = Duration::from_nanos(n);
            let back = parse_duration(&format_duration(d)).unwrap();
            let diff = back.as_nanos().abs_diff(d.as_nanos());
            prop_assert!(diff <= 1 + d.as_nanos() / 1_000_000_000, "{d:?} -> {back:?}");
        }

        #[test]
        fn never_panics(s in "\\PC{0,20}") {
            let _ = parse_duration(&s);
        }
    }
}
