//! [`Secret`]: a credential value that is zeroized on drop and never printed by `Debug`.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A secret string. `Debug` prints `Secret(***)`; memory is wiped on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// The plaintext. Callers must not log or print it except where the user asked for it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The largest value keyrack stores or hands out, in bytes (256 KiB). Larger values are refused
/// at `set`, and a vault that yields one is that key's `errored` row at `unlock`, so one oversized
/// value can never break the batch that carries the other keys to the daemon.
pub const MAX_SECRET_BYTES: usize = 256 * 1024;

/// Why `value` can never be stored or handed out, if it cannot: over [`MAX_SECRET_BYTES`], or a
/// NUL byte (no process environment or argv can carry one). The reason never quotes the value.
pub fn unfit(value: &str) -> Option<String> {
    if value.len() > MAX_SECRET_BYTES {
        return Some(format!(
            "it is {} bytes, over the limit of {MAX_SECRET_BYTES} bytes (256 KiB)",
            value.len()
        ));
    }
    if let Some(at) = value.bytes().position(|b| b == 0) {
        return Some(format!(
            "it contains a NUL byte (at byte {at}), which no environment variable can carry"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfit_values() {
        assert!(unfit("ordinary").is_none());
        assert!(unfit(&"x".repeat(MAX_SECRET_BYTES)).is_none());
        let big = unfit(&"x".repeat(MAX_SECRET_BYTES + 1)).unwrap();
        assert!(big.contains("262145 bytes"), "{big}");
        let nul = unfit("a\0b").unwrap();
        assert!(nul.contains("NUL") && nul.contains("byte 1"), "{nul}");
    }
}
