//! Number formatting for everything dyno prints: the template filters `ms`,
//! `num` and `pct`, the comparison and history tables, and chart labels.
//!
//! This module owns how a number becomes text: fixed decimals, never `-0`,
//! and `–` for a missing or non-finite value, so outputs are byte-stable.
//! It never computes statistics or decides which numbers to show, and reads
//! no locale and no clock.

/// What the formatters print for a missing (null, undefined or non-finite)
/// value.
pub(crate) const MISSING: &str = "–";

/// `x` with `decimals` fixed decimals; never `-0.0`.
pub(crate) fn fixed(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => s,
    }
}

/// [`fixed`] for a value that may be missing: `–` when it is `None` or not
/// finite.
pub(crate) fn fixed_or_missing(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(x) if x.is_finite() => fixed(x, decimals),
        _ => MISSING.to_string(),
    }
}

/// Milliseconds: `123.4 ms` below one second, `1.23 s` from there on;
/// null/undefined → `–`.
pub fn ms(value: Option<f64>) -> String {
    match value {
        Some(x) if x.is_finite() => {
            // 999.96 would print as "1000.0 ms"; switch on the rounded value.
            if x.abs() >= 999.95 {
                format!("{} s", fixed(x / 1000.0, 2))
            } else {
                format!("{} ms", fixed(x, 1))
            }
        }
        _ => MISSING.to_string(),
    }
}

/// Fixed decimals (default 0, at most 12); null/undefined → `–`.
pub fn num(value: Option<f64>, decimals: Option<u32>) -> String {
    fixed_or_missing(value, decimals.unwrap_or(0).min(12) as usize)
}

/// A fraction as a percentage with fixed decimals (default 1, at most 12):
/// `0.123` → `12.3%`; null/undefined → `–`.
pub fn pct(value: Option<f64>, decimals: Option<u32>) -> String {
    match value {
        Some(x) if x.is_finite() => {
            format!(
                "{}%",
                fixed(x * 100.0, decimals.unwrap_or(1).min(12) as usize)
            )
        }
        _ => MISSING.to_string(),
    }
}

/// Magnitude from which axis ticks switch to scientific notation, so an
/// extreme value gives a short label rather than hundreds of digits.
const SCIENTIFIC_FROM: f64 = 1e15;

/// A chart axis tick, with a precision suited to the axis span; from
/// `1e15` on in scientific notation (`4.5e307`).
pub(crate) fn axis_tick(value: f64, span: f64) -> String {
    if value.abs() >= SCIENTIFIC_FROM {
        return format!("{value:.1e}");
    }
    let decimals = if span > 0.0 && span.is_finite() {
        (1.0 - span.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        0
    };
    fixed(value, decimals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_never_prints_negative_zero() {
        assert_eq!(fixed(2.345, 1), "2.3");
        assert_eq!(fixed(-0.0001, 0), "0");
        assert_eq!(fixed(-0.001, 2), "0.00");
        assert_eq!(fixed(-0.0, 1), "0.0");
        assert_eq!(fixed(-1.5, 1), "-1.5");
        assert_eq!(fixed(250.0, 0), "250");
    }

    #[test]
    fn fixed_or_missing_marks_absent_and_non_finite() {
        assert_eq!(fixed_or_missing(Some(409.0), 2), "409.00");
        assert_eq!(fixed_or_missing(Some(0.04999), 4), "0.0500");
        assert_eq!(fixed_or_missing(None, 2), "–");
        assert_eq!(fixed_or_missing(Some(f64::NAN), 2), "–");
        assert_eq!(fixed_or_missing(Some(f64::INFINITY), 2), "–");
    }

    #[test]
    fn ms_filter() {
        assert_eq!(ms(Some(123.44)), "123.4 ms");
        assert_eq!(ms(Some(0.0)), "0.0 ms");
        assert_eq!(ms(Some(999.9)), "999.9 ms");
        assert_eq!(ms(Some(999.96)), "1.00 s");
        assert_eq!(ms(Some(1000.0)), "1.00 s");
        assert_eq!(ms(Some(1234.5)), "1.23 s");
        assert_eq!(ms(Some(61_000.0)), "61.00 s");
        assert_eq!(ms(Some(-0.01)), "0.0 ms");
        assert_eq!(ms(None), "–");
        assert_eq!(ms(Some(f64::NAN)), "–");
    }

    #[test]
    fn num_and_pct_filters() {
        assert_eq!(num(Some(1.23456), Some(2)), "1.23");
        assert_eq!(num(Some(2.5), None), "2");
        assert_eq!(num(Some(120.0), Some(1)), "120.0");
        assert_eq!(num(Some(-0.001), Some(2)), "0.00");
        assert_eq!(num(None, Some(2)), "–");
        assert_eq!(pct(Some(0.123), None), "12.3%");
        assert_eq!(pct(Some(1.0), Some(0)), "100%");
        assert_eq!(pct(None, None), "–");
    }

    #[test]
    fn tick_formatting_avoids_negative_zero() {
        assert_eq!(axis_tick(-0.0001, 1000.0), "0");
        assert_eq!(axis_tick(250.0, 1000.0), "250");
        assert_eq!(axis_tick(0.25, 0.5), "0.25");
        assert_eq!(axis_tick(2.5, 5.0), "2.5");
        assert_eq!(axis_tick(20.0, 10.0), "20");
        assert_eq!(axis_tick(4.5e307, 1e308), "4.5e307");
        assert_eq!(axis_tick(-2e15, 1e16), "-2.0e15");
    }
}
