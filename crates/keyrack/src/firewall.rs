//! The firewall: values that look like long-lived tokens are `blocked` on every read path
//! unless the caller passes `--allow-dangerous`.

/// Patterns of long-lived credentials, with what they are.
const PATTERNS: &[(&str, &str)] = &[
    ("ghp_", "GitHub personal access token"),
    ("gho_", "GitHub OAuth token"),
    ("ghu_", "GitHub user-to-server token"),
    ("ghr_", "GitHub refresh token"),
    ("github_pat_", "GitHub fine-grained personal access token"),
];

/// Why a value was blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The pattern that matched (`ghp_`, `AKIA…`).
    pub pattern: &'static str,
    /// What such a value is.
    pub what: &'static str,
}

impl Blocked {
    /// A sentence naming the pattern.
    pub fn reason(&self) -> String {
        format!(
            "value looks like a long-lived {} ({}); keyrack hands out short-lived credentials",
            self.what, self.pattern
        )
    }
}

/// Checks a value; `Some` when it must be blocked.
pub fn inspect(value: &str) -> Option<Blocked> {
    let v = value.trim();
    for (prefix, what) in PATTERNS {
        if v.starts_with(prefix) {
            return Some(Blocked {
                pattern: prefix,
                what,
            });
        }
    }
    let b = v.as_bytes();
    if b.len() >= 20
        && v.starts_with("AKIA")
        && b[4..20]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Some(Blocked {
            pattern: "AKIA…",
            what: "AWS access key id",
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_known_long_lived_tokens() {
        for v in [
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "gho_x",
            "ghu_x",
            "ghr_x",
            "github_pat_11AAAA",
            "AKIAIOSFODNN7EXAMPLE",
        ] {
            assert!(inspect(v).is_some(), "{v} should be blocked");
        }
        assert_eq!(inspect("AKIAIOSFODNN7EXAMPLE").unwrap().pattern, "AKIA…");
    }

    #[test]
    fn lets_ordinary_values_through() {
        for v in [
            "xai-123",
            "AKIA",
            "akiaiosfodnn7example",
            "hello ghp_",
            "ASIAIOSFODNN7EXAMPLE",
        ] {
            assert!(inspect(v).is_none(), "{v} should pass");
        }
    }
}
