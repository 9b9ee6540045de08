//! The firewall: values that look like long-lived tokens are `blocked` on every read path
//! unless the caller passes `--allow-dangerous`; `unlock` reports them as `blocked` and `set`
//! refuses to store them without that flag.
//!
//! Values are normalised before matching, so a token does not slip through behind decoration a
//! copy-paste adds: zero-width characters and byte-order marks are removed everywhere, and each
//! line is stripped of surrounding whitespace, quotes and a `Bearer ` / `token ` prefix. A token
//! of the full documented shape is found anywhere in the value (`GH_TOKEN=ghp_…`, JSON, a later
//! line). AWS access key ids are matched case-insensitively; `ASIA…` (temporary STS keys) is
//! allowed on purpose, and so is a value that is exactly one GitHub App installation token
//! (`ghs_…`, at most an hour long-lived): the classic 40-character form and the long stateless
//! form (`ghs_` + 36 or more of `[A-Za-z0-9._]`) alike, whatever its random body happens to hold.

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
    pub(crate) fn reason(&self) -> String {
        format!(
            "value looks like a long-lived {} ({}); keyrack hands out short-lived credentials",
            self.what, self.pattern
        )
    }
}

/// Checks a value; `Some` when it must be blocked.
pub(crate) fn inspect(value: &str) -> Option<Blocked> {
    if is_installation_token(value) {
        return None;
    }
    // (every invisible character is outside ASCII: an ASCII value, the usual case, is kept as is)
    let visible: std::borrow::Cow<'_, str> = if value.is_ascii() {
        value.into()
    } else {
        value
            .chars()
            .filter(|c| !INVISIBLE.contains(c))
            .collect::<String>()
            .into()
    };
    // Every pattern below needs `gh` or `gi` (the GitHub prefixes) or `akia` in any case (AWS) in the
    // visible text: most values have neither and are done after one pass.
    if !could_match(visible.as_bytes()) {
        return None;
    }
    visible
        .split(['\n', '\r'])
        .find_map(|line| at_start(unwrap_line(line)))
        .or_else(|| anywhere(&visible))
}

/// Whether `value` is exactly one GitHub App installation token: `ghs_` followed by at least
/// 36 characters of `[A-Za-z0-9._]` (the classic form has exactly 36 letters and digits).
pub(crate) fn is_installation_token(value: &str) -> bool {
    value.strip_prefix("ghs_").is_some_and(|body| {
        body.len() >= 36
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
    })
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

/// Whether `v` holds `gh`, `gi` or `akia` (any case): what every blocked value holds.
fn could_match(v: &[u8]) -> bool {
    debug_assert!(PATTERNS
        .iter()
        .all(|(p, _, _)| p.starts_with("gh") || p.starts_with("gi")));
    v.windows(2).any(|w| w == b"gh" || w == b"gi") || find_from(v, b"akia", 0, true).is_some()
}

/// Where `needle` (ASCII) first occurs in `hay` at or after `from`, comparing ASCII letters
/// case-insensitively when `fold`; the same answer `find` gives (on the lower-cased text when
/// `fold`), without building a searcher or a lower-cased copy for a short value.
fn find_from(hay: &[u8], needle: &[u8], from: usize, fold: bool) -> Option<usize> {
    let last = hay.len().checked_sub(needle.len())?;
    let first = needle[0];
    (from..=last).find(|&i| {
        let c = hay[i];
        if c != first && !(fold && c.to_ascii_lowercase() == first) {
            return false;
        }
        let w = &hay[i..i + needle.len()];
        if fold {
            w.eq_ignore_ascii_case(needle)
        } else {
            w == needle
        }
    })
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
        while let Some(i) = find_from(b, prefix.as_bytes(), from, false) {
            if boundary(i) && run(i + prefix.len(), body_char) >= *body {
                return Some(Blocked {
                    pattern: prefix,
                    what,
                });
            }
            from = i + prefix.len();
        }
    }
    let mut from = 0;
    while let Some(i) = find_from(b, b"akia", from, true) {
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

    /// `find_from` gives what `find` gives (on the lower-cased text when folding).
    #[test]
    fn find_from_agrees_with_find() {
        let alphabet = [
            "a", "A", "k", "K", "i", "I", "g", "h", "p", "_", "é", "\n", "x",
        ];
        let mut r = crate::testgen::Lcg(11);
        for _ in 0..5000 {
            let s: String = (0..r.next() % 12).map(|_| r.pick(&alphabet)).collect();
            let from = (r.next() as usize) % (s.len() + 1);
            if !s.is_char_boundary(from) {
                continue;
            }
            for needle in ["ghp_", "akia", "a", "github_pat_"] {
                let want = s[from..].find(needle).map(|i| i + from);
                assert_eq!(
                    find_from(s.as_bytes(), needle.as_bytes(), from, false),
                    want
                );
                let lower = s.to_ascii_lowercase();
                let want = lower[from..].find(needle).map(|i| i + from);
                assert_eq!(find_from(s.as_bytes(), needle.as_bytes(), from, true), want);
            }
        }
    }

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
    fn lets_installation_tokens_through_in_both_forms() {
        let classic = "ghs_16C7e42F292c6912E7710c838347Ae178B4a";
        assert_eq!(classic.len(), 40);
        // the long stateless form: dots and underscores, and a random body that happens to hold
        // what would otherwise look like a long-lived token after a `.` boundary
        let stateless = format!(
            "ghs_{}.{}.AKIAIOSFODNN7EXAMPLE.ghp_0123456789abcdefghijklmnopqrstuvwxyz_x",
            "A1b2_C3d4".repeat(8),
            "z9Y8x7W6v5".repeat(20)
        );
        for v in [
            classic.to_string(),
            stateless,
            format!("ghs_{}", "a".repeat(36)),
        ] {
            assert!(is_installation_token(&v), "{v}");
            assert_eq!(inspect(&v), None, "{v} should pass");
        }
        // not one installation token: the usual rules apply
        for v in [
            format!("{classic}\nghp_0123456789abcdefghijklmnopqrstuvwxyz"),
            "ghs_x ghp_0123456789abcdefghijklmnopqrstuvwxyz".to_string(),
            "Bearer ghs_0123456789abcdefghijklmnopqrstuvwxyz AKIAIOSFODNN7EXAMPLE".to_string(),
        ] {
            assert!(!is_installation_token(&v), "{v}");
            assert!(inspect(&v).is_some(), "{v} should be blocked");
        }
        for v in [
            "ghs_",
            "ghs_short",
            "ghs_0123456789abcdefghijklmnopqrstuvwxy",
            "xghs_0123456789abcdefghijklmnopqrstuvwxyz",
        ] {
            assert!(!is_installation_token(v), "{v}");
            assert_eq!(inspect(v), None, "{v}: no long-lived pattern either");
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
