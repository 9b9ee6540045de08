//! A fast reader for the daemon's GET answer — the one answer on the hot path.
//!
//! serde's tagged-enum and field machinery costs several thousand instructions per grant;
//! `source` of 50 keys spent a quarter of its instructions there. [`decode`] reads exactly the
//! compact form the daemon writes (`serde_json::to_vec` of [`super::protocol::Response`]):
//!
//! ```text
//! {"status":"grants","grants":[null,{"slug":"o.e.K","secret":"…","vault":"os.secure","mech":"replica","expiresAt":1}]}
//! ```
//!
//! Anything else — whitespace, another field order, a renewal deadline, files, labels or a
//! vault payload, an `ended` list, an alias, an escape
//! outside the secret, a number it does not read the way serde_json would — returns `None`, and
//! the caller parses the line with serde as before. A generated-input test holds it to
//! serde's answer on every line it accepts.

use jiff::Timestamp;

use crate::grant::{Grant, Mech, VaultKind};
use crate::secret::Secret;
use crate::slug::Slug;

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    /// Consumes `lit` if the input continues with it.
    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, lit: &[u8]) -> Option<()> {
        self.eat(lit).then_some(())
    }

    /// A JSON string without escapes (names the daemon writes plainly), as its bytes (not
    /// checked as UTF-8: each caller compares them with names or checks them).
    fn plain_str(&mut self) -> Option<&'a [u8]> {
        self.expect(b"\"")?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        self.i += 1;
        Some(&self.b[start..self.i - 1])
    }

    /// Any JSON string: plain ones directly, escaped ones through serde_json.
    fn string(&mut self) -> Option<String> {
        let open = self.i;
        self.expect(b"\"")?;
        let mut escaped = false;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.i += 2;
                }
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        self.i += 1;
        let token = self.b.get(open..self.i)?;
        if escaped {
            serde_json::from_slice::<String>(token).ok()
        } else {
            Some(
                std::str::from_utf8(&token[1..token.len() - 1])
                    .ok()?
                    .to_string(),
            )
        }
    }

    /// A non-negative integer that fits `u64`, in JSON's form (no leading zero, no fraction
    /// or exponent).
    fn integer(&mut self) -> Option<u64> {
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(d) = self.b.get(self.i).filter(|c| c.is_ascii_digit()) {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0
            || (digits > 1 && self.b[start] == b'0')
            || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        Some(n)
    }

    /// One grant (or `null`); `asked` is the slug asked for in its place, if known.
    fn grant(&mut self, asked: Option<&Slug>) -> Option<Option<Grant>> {
        if self.eat(b"null") {
            return Some(None);
        }
        self.expect(b"{\"slug\":")?;
        let slug = self.plain_str()?;
        // the slug asked for, as it was sent (the same text parses to the same slug); another
        // (the `org.all` fallback) is parsed
        let slug = match asked {
            Some(a) if a.as_str().as_bytes() == slug => a.clone(),
            _ => Slug::parse(std::str::from_utf8(slug).ok()?).ok()?,
        };
        self.expect(b",\"secret\":")?;
        let secret = Secret::new(self.string()?);
        self.expect(b",\"vault\":")?;
        let vault = self.plain_str()?;
        let vault = *VaultKind::ALL
            .iter()
            .find(|v| v.as_str().as_bytes() == vault)?;
        self.expect(b",\"mech\":")?;
        let mech = self.plain_str()?;
        let mech = *Mech::ALL.iter().find(|m| m.as_str().as_bytes() == mech)?;
        let expires_at = match self.eat(b",\"expiresAt\":") {
            true => {
                let ms = i64::try_from(self.integer()?).ok()?;
                Some(Timestamp::from_millisecond(ms).ok()?)
            }
            false => None,
        };
        self.expect(b"}")?;
        let mut grant = Grant::new(slug, secret, vault, mech);
        grant.expires_at = expires_at;
        Some(Some(grant))
    }
}

/// The grants of a GET answer line in the daemon's own compact form; `None` for anything else.
/// `asked`: the slugs the GET asked for, in order (or none).
pub(crate) fn decode(line: &[u8], asked: &[Slug]) -> Option<Vec<Option<Grant>>> {
    let mut r = Reader { b: line, i: 0 };
    r.expect(b"{\"status\":\"grants\",\"grants\":[")?;
    let mut grants = Vec::with_capacity(asked.len());
    if !r.eat(b"]") {
        loop {
            grants.push(r.grant(asked.get(grants.len()))?);
            if r.eat(b"]") {
                break;
            }
            r.expect(b",")?;
        }
    }
    r.expect(b"}")?;
    r.eat(b"\n");
    (r.i == line.len()).then_some(grants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::Response;
    use crate::grant::Labels;
    use crate::testgen::Lcg;

    fn serde_grants(line: &[u8]) -> Option<Vec<Option<Grant>>> {
        match serde_json::from_slice::<Response>(line) {
            Ok(Response::Grants { grants, ended }) if ended.is_empty() => Some(grants),
            _ => None,
        }
    }

    fn secret(r: &mut Lcg) -> String {
        let pieces = [
            "a", "Z9", "'", "\"", "\\", "\\n", "\n", "\t", "\u{1}", "\u{7f}", "é", "€", "🔑", "/",
            "ghp_", " ", "null", "}", "]", ",",
        ];
        (0..r.next() % 12).map(|_| r.pick(&pieces)).collect()
    }

    fn grant(r: &mut Lcg) -> Option<Grant> {
        if r.next().is_multiple_of(5) {
            return None;
        }
        let env = r.pick(&["test", "prod", "all", "ci-1"]);
        let key = r.pick(&["K", "XAI_API_KEY", "A.B", "_x"]);
        let ms = |n: i64| Timestamp::from_millisecond(n).unwrap();
        let mut g = Grant::new(
            // (`A.B`: a legacy dotted key, as a grant may still carry)
            Slug::parse(&format!("{}.{env}.{key}", r.pick(&["acme", "@all", "o-1"]))).unwrap(),
            Secret::new(secret(r)),
            VaultKind::ALL[(r.next() as usize) % VaultKind::ALL.len()],
            Mech::ALL[(r.next() as usize) % Mech::ALL.len()],
        );
        g.expires_at = match r.next() % 4 {
            0 => None,
            1 => Some(ms(0)),
            2 => Some(ms(253_402_000_000_000)),
            _ => Some(ms((r.next() % 4_000_000_000_000) as i64)),
        };
        if r.next().is_multiple_of(9) {
            match r.next() % 4 {
                0 => g.renew_at = g.expires_at,
                1 => g.release = vec!["/c".into()],
                2 => {
                    let mut labels = Labels::new();
                    labels.insert("team".into(), "p".into());
                    g.labels = labels;
                }
                _ => g.payload = Some(Secret::new("{\"t\":1}".into())),
            }
        }
        Some(g)
    }

    /// What the daemon writes, and lines near it: the fast reader agrees with serde on every
    /// line it accepts, and accepts every line the daemon writes for grants without renewal data, files, labels or payload.
    #[test]
    fn the_fast_reader_agrees_with_serde() {
        let mut r = Lcg(11);
        let mut fast_hits = 0;
        for case in 0..3000 {
            let grants: Vec<Option<Grant>> = (0..r.next() % 5).map(|_| grant(&mut r)).collect();
            let mut line = serde_json::to_vec(&Response::Grants {
                grants: grants.clone(),
                ended: vec![],
            })
            .unwrap();
            if r.next().is_multiple_of(2) {
                line.push(b'\n');
            }
            // the slugs asked for: mostly those granted, some another (a fallback), or none
            let other = Slug::parse("other.test.K").unwrap();
            let asked: Vec<Slug> = match r.next() % 4 {
                0 => vec![],
                _ => grants
                    .iter()
                    .map(|g| match g {
                        Some(g) if !r.next().is_multiple_of(4) => g.slug.clone(),
                        _ => other.clone(),
                    })
                    .collect(),
            };
            let plain = grants.iter().flatten().all(|g| {
                g.renew_at.is_none()
                    && g.release.is_empty()
                    && g.labels.is_empty()
                    && g.payload.is_none()
            });
            if plain {
                assert_eq!(decode(&line, &asked), Some(grants.clone()), "case {case}");
                fast_hits += 1;
            }
            // near misses: truncations, flipped and inserted bytes
            let mut near = line.clone();
            match r.next() % 4 {
                0 => near.truncate((r.next() as usize) % (line.len() + 1)),
                1 => {
                    let at = (r.next() as usize) % line.len();
                    near[at] = *b" 0\"\\{}[],:ne-.9".get((r.next() as usize) % 15).unwrap();
                }
                2 => {
                    let at = (r.next() as usize) % line.len();
                    near.insert(at, b' ');
                }
                _ => near = line.replace_str("\"expiresAt\":", "\"expiresAt\":0"),
            }
            for l in [&line, &near] {
                if let Some(fast) = decode(l, &asked) {
                    assert_eq!(
                        Some(fast),
                        serde_grants(l),
                        "case {case}: {:?}",
                        String::from_utf8_lossy(l)
                    );
                }
            }
        }
        assert!(fast_hits > 1000, "{fast_hits}");
    }

    #[test]
    fn other_answers_are_left_to_serde() {
        for line in [
            &b"{\"status\":\"error\",\"message\":\"no\"}"[..],
            b"{\"status\":\"grants\", \"grants\":[]}",
            b"{\"grants\":[],\"status\":\"grants\"}",
            b"{\"status\":\"grants\",\"grants\":[{\"slug\":\"a.b.C\",\"secret\":\"x\",\"vault\":\"no.such.vault\",\"mech\":\"replica\"}]}",
            b"{\"status\":\"grants\",\"grants\":[{\"slug\":\"a.b.C\",\"secret\":\"x\",\"vault\":\"os.secure\",\"mech\":\"replica\",\"expiresAt\":1.0}]}",
            b"{\"status\":\"grants\",\"grants\":[{\"slug\":\"a.b.C\",\"secret\":\"x\",\"vault\":\"os.secure\",\"mech\":\"replica\",\"expiresAt\":18446744073709551616}]}",
            b"{\"status\":\"grants\",\"grants\":[null],\"ended\":[]}",
            b"{\"status\":\"grants\",\"grants\":[]}\n\n",
        ] {
            assert!(decode(line, &[]).is_none(), "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(
            decode(b"{\"status\":\"grants\",\"grants\":[]}", &[]),
            Some(vec![])
        );
    }

    trait ReplaceStr {
        fn replace_str(&self, from: &str, to: &str) -> Vec<u8>;
    }

    impl ReplaceStr for Vec<u8> {
        fn replace_str(&self, from: &str, to: &str) -> Vec<u8> {
            String::from_utf8_lossy(self).replace(from, to).into_bytes()
        }
    }
}
