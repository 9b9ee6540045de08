//! The firewall: values that look like long-lived tokens are `blocked` on every read path
//! unless the caller passes `--allow-dangerous`; `unlock` reports them as `blocked` and `set`
//! refuses to store them without that flag.
//!
//! Values are normalised before matching, so a token does not slip through behind decoration a
//! copy-paste adds: zero-width characters and byte-order marks are removed everywhere, and each
//! line is stripped of surrounding whitespace, quotes and a `Bearer ` / `token ` prefix. A token
//! of the full documented shape is found anywhere in the value (`GH_TOKEN=ghp_…`, JSON, a later
//! line). AWS access key ids are matched case-insensitively; `ASIA…` (temporary STS keys) is
//! allowed on purpose.

/// Prefixes of long-lived credentials, what they are, and how many token characters follow the
/// prefix in a real token (used when the token is found inside a longer text).
const PATTERNS: &[(&str, &str, usize)] = &[
    ("ghp_", "GitHub personal access token", 36),
    ("gho_", "GitHub OAuth token", 36),
    ("ghu_", "GitHub user-to-server token", 36),
    ("ghr_", "GitHub refresh token", 36),
    (
        "github_pat_",
        "GitHub fine-grained personal access token",
        22,
    ),
];

/// The AWS long-lived access key id: `AKIA` + 16 letters or digits.
const AKIA: (&str, &str) = ("AKIA…", "AWS access key id");

/// Characters that render as nothing and are removed before matching.
const INVISIBLE: &[char] = &['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}'];

/// Quotes that may wrap a pasted value.
const QUOTES: &[char] = &['"', '\'', '`'];

/// Scheme words that may precede a pasted token (compared case-insensitively).
const SCHEMES: &[&str] = &["bearer", "token"];

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
    let visible: String = value.chars().filter(|c| !INVISIBLE.contains(c)).collect();
    visible
        .split(['\n', '\r'])
        .find_map(|line| at_start(unwrap_line(line)))
        .or_else(|| anywhere(&visible))
}

/// Strips surrounding whitespace, quotes and `Bearer ` / `token ` prefixes until none is left.
fn unwrap_line(mut s: &str) -> &str {
    loop {
        let before = s.len();
        s = s.trim().trim_matches(QUOTES);
        for scheme in SCHEMES {
            let n = scheme.len();
            let word = s.get(..n).is_some_and(|w| w.eq_ignore_ascii_case(scheme));
            let spaced = s
                .get(n..)
                .is_some_and(|r| r.starts_with(char::is_whitespace));
            if word && spaced {
                s = &s[n..];
            }
        }
        if s.len() == before {
            return s;
        }
    }
}

/// A value (one line, unwrapped) that starts like a long-lived token.
fn at_start(v: &str) -> Option<Blocked> {
    for (prefix, what, _) in PATTERNS {
        if v.starts_with(prefix) {
            return Some(Blocked {
                pattern: prefix,
                what,
            });
        }
    }
    let b = v.as_bytes();
    if b.len() >= 20
        && b[..4].eq_ignore_ascii_case(b"AKIA")
        && b[4..20].iter().all(u8::is_ascii_alphanumeric)
    {
        return Some(blocked_akia());
    }
    None
}

fn blocked_akia() -> Blocked {
    Blocked {
        pattern: AKIA.0,
        what: AKIA.1,
    }
}

/// A token of the full documented shape anywhere in `v`, at a word boundary.
fn anywhere(v: &str) -> Option<Blocked> {
    let b = v.as_bytes();
    let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
    let boundary = |i: usize| i == 0 || !word(&b[i - 1]);
    let run =
        |from: usize, ok: &dyn Fn(&u8) -> bool| b[from..].iter().take_while(|c| ok(c)).count();
    for (prefix, what, body) in PATTERNS {
        let body_char: &dyn Fn(&u8) -> bool = if *prefix == "github_pat_" {
            &word
        } else {
            &u8::is_ascii_alphanumeric
        };
        let mut from = 0;
        while let Some(i) = v[from..].find(prefix).map(|i| i + from) {
            if boundary(i) && run(i + prefix.len(), body_char) >= *body {
                return Some(Blocked {
                    pattern: prefix,
                    what,
                });
            }
            from = i + prefix.len();
        }
    }
    let lower = v.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("akia").map(|i| i + from) {
        if boundary(i) && run(i + 4, &u8::is_ascii_alphanumeric) == 16 {
            return Some(blocked_akia());
        }
        from = i + 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GHP: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";

    #[test]
    fn blocks_known_long_lived_tokens() {
        for v in [
            GHP,
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
    fn sees_through_decoration() {
        let cases = [
            format!("\u{FEFF}{GHP}"),
            format!("\u{200B}{GHP}"),
            format!("gh\u{200D}p_{}", &GHP[4..]),
            format!("{GHP}\u{2060}"),
            format!("\"{GHP}\""),
            format!("'{GHP}'"),
            format!("`{GHP}`"),
            format!("Bearer {GHP}"),
            format!("bearer\t{GHP}"),
            format!("token {GHP}"),
            format!("\"Bearer {GHP}\""),
            format!("\n{GHP}"),
            format!("first line\n{GHP}"),
            format!("first line\r\n  '{GHP}'  "),
            format!("GH_TOKEN={GHP}"),
            format!("{{\"token\":\"{GHP}\"}}"),
            format!("Authorization: Bearer {GHP}"),
            "gho_x\n".into(),
            " \u{FEFF}'gho_x'".into(),
        ];
        for v in &cases {
            let b = inspect(v).unwrap_or_else(|| panic!("{v:?} should be blocked"));
            assert!(b.pattern.starts_with("gh"), "{v:?}: {b:?}");
        }
    }

    #[test]
    fn aws_access_key_ids_in_any_case() {
        for v in [
            "akiaiosfodnn7example",
            "AkiaIOSFODNN7EXAMPLE",
            "\u{FEFF}AKIAIOSFODNN7EXAMPLE",
            "\"akiaiosfodnn7example\"",
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
            "id: akiaiosfodnn7example\nsecret: x",
        ] {
            assert_eq!(
                inspect(v).map(|b| b.pattern),
                Some("AKIA…"),
                "{v:?} should be blocked"
            );
        }
    }

    #[test]
    fn lets_ordinary_values_through() {
        for v in [
            "xai-123",
            "AKIA",
            "xAKIAIOSFODNN7EXAMPLE",
            "hello ghp_",
            "my_ghp_0123456789abcdefghijklmnopqrstuvwxyz",
            "ASIAIOSFODNN7EXAMPLE",
            "asiaiosfodnn7example",
            "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
            "tokenghp",
            "",
        ] {
            assert!(inspect(v).is_none(), "{v} should pass");
        }
    }
}
