//! [`Secret`]: a credential value that is zeroized on drop and never printed by `Debug`;
//! [`SecretBytes`]: a byte buffer that may hold secrets, zeroized on drop.
//!
//! Both wipe their whole allocation with one `memset` behind an optimisation barrier (how
//! `zeroize` wipes a byte slice). `zeroize`'s own wipe of a `Vec` or `String` writes its
//! contents one volatile byte at a time: several instructions per byte, which made wiping the
//! daemon's answer cost `source` more than parsing it.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// Zeroes every byte `v` holds or has room for, and empties it.
fn wipe(v: &mut Vec<u8>) {
    v.clear();
    // (after `clear`, the spare capacity is the whole allocation)
    v.spare_capacity_mut().zeroize();
}

/// A secret string. `Debug` prints `Secret(***)`; memory is wiped on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut std::mem::take(&mut self.0).into_bytes());
    }
}

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        Secret(value)
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

/// Bytes that may hold secrets (a request or an answer line, an environment block): a `Vec<u8>`
/// that is wiped, contents and spare capacity, when dropped. Growing it may leave a copy in the
/// old allocation: reserve what it needs up front.
#[derive(Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// An empty buffer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        SecretBytes(Vec::with_capacity(n))
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        SecretBytes(v)
    }
}

impl Deref for SecretBytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for SecretBytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.0.len())
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
pub(crate) fn unfit(value: &str) -> Option<String> {
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
    fn a_wipe_zeroes_the_contents_and_the_spare_room() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(b"a secret value");
        let cap = v.capacity();
        wipe(&mut v);
        assert!(v.is_empty());
        assert_eq!(v.capacity(), cap);
        // SAFETY: `wipe` wrote a zero to every byte of the allocation, so all `cap` bytes are
        // initialised.
        unsafe { v.set_len(cap) };
        assert!(v.iter().all(|&b| b == 0));
    }

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
