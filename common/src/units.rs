//! The one parser each for sizes, umasks and signal names, shared by config and ctl.

use nix::sys::signal::Signal;
use std::str::FromStr;

/// Why a size, mode or signal written in a config or on the command line was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not a whole number with an optional `KB`, `MB` or `GB` suffix, or too large for 64 bits;
    /// holds the text as given.
    #[error("invalid size '{0}': expected a number with an optional KB, MB or GB suffix")]
    Size(String),
    /// Not octal digits, or larger than 0o7777; holds the text as given.
    #[error("invalid octal mode '{0}': expected octal digits such as 022")]
    Octal(String),
    /// A number that is no signal on this system.
    #[error("unknown signal number {0}")]
    SignalNumber(i32),
    /// A name that is no signal on this system; holds the text as given.
    #[error("unknown signal '{0}'")]
    SignalName(String),
}

/// Parses a byte size: a whole number with an optional `KB`, `MB` or `GB` suffix (powers of 1024,
/// as supervisord's `byte_size`). Returns bytes.
///
/// # Errors
/// [`UnitError::Size`]: not a number, or an unknown suffix.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let (digits, mult) = [("GB", 1u64 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)]
        .iter()
        .find_map(|(suf, m)| upper.strip_suffix(suf).map(|d| (d.trim().to_owned(), *m)))
        .unwrap_or((upper.clone(), 1));
    digits.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)).ok_or_else(|| UnitError::Size(s.to_owned()))
}

/// Parses a umask or file mode written in octal: `022`, `0o22`, `"022"` or `22` all mean 0o22.
///
/// # Errors
/// [`UnitError::Octal`]: not octal digits, or larger than 0o7777.
pub fn parse_octal(s: &str) -> Result<u32, UnitError> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")).unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(v) if v <= 0o7777 && !digits.is_empty() => Ok(v),
        _ => Err(UnitError::Octal(s.to_owned())),
    }
}

/// Parses a signal: a name with or without `SIG` in any case (`TERM`, `sigusr1`), or its number.
///
/// # Errors
/// [`UnitError::SignalNumber`] or [`UnitError::SignalName`]: no such signal on this system.
pub fn parse_signal(s: &str) -> Result<Signal, UnitError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| UnitError::SignalNumber(n));
    }
    let upper = t.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::from_str(&full).map_err(|_| UnitError::SignalName(s.to_owned()))
}

/// The signal's name as logs print it: `SIGTERM`.
pub fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map(|s| s.as_str().to_owned()).unwrap_or_else(|_| format!("signal {sig}"))
}

/// Now on CLOCK_MONOTONIC, in nanoseconds since an unspecified start (boot, on Linux). The
/// clock is the same for every process of the host, so a time taken by the spawner means the
/// same to a supervisor started later (issue 16: uptimes survive a supervisor restart).
/// `std::time::Instant` is this clock on Linux, but cannot be sent to another process.
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => (t.tv_sec() as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec() as u64),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50MB"), Ok(50 << 20));
        assert_eq!(parse_size("1kb"), Ok(1024));
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(
            parse_size("12XB").map_err(|e| e.to_string()),
            Err("invalid size '12XB': expected a number with an optional KB, MB or GB suffix".to_owned())
        );
    }

    #[test]
    fn octal() {
        for s in ["022", "0o22", "22", "0022"] {
            assert_eq!(parse_octal(s), Ok(0o22), "{s}");
        }
        assert!(parse_octal("089").is_err());
        assert!(parse_octal("").is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("sigusr1"), Ok(Signal::SIGUSR1));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert_eq!(parse_signal("NOPE").map_err(|e| e.to_string()), Err("unknown signal 'NOPE'".to_owned()));
        assert_eq!(parse_signal("99").map_err(|e| e.to_string()), Err("unknown signal number 99".to_owned()));
        assert_eq!(signal_name(15), "SIGTERM");
    }
}
