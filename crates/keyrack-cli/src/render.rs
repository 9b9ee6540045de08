//! Rendering: compact trees for humans, JSON for machines, errors with a `fix:` line.
//!
//! One renderer for key rows ([`key_rows`], [`rows_json`]) serves get, source, exec, unlock,
//! relock, status and list. A problem several keys share (three locked keys of `test`) gets its
//! fix once, after the rows.
//!
//! Style: with `--color auto` (the default) colour, emoji and box-drawing characters appear only
//! on a terminal, without `NO_COLOR` and with a `TERM` other than `dumb`; otherwise the output is
//! plain ASCII (`|-`, `` `- ``). `--color always` / `never` force either.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::OnceLock;

use keyrack::ops::row::{fix_groups, rfc3339, KeyRow, Source, Status};
use keyrack::Error;

use crate::cli::ColorChoice;
use crate::ui;

static CHOICE: OnceLock<ColorChoice> = OnceLock::new();

/// Records `--color` (once, before anything is rendered).
pub fn init(choice: ColorChoice) {
    let _ = CHOICE.set(choice);
}

/// A tree node: a label and children.
#[derive(Debug, Default, Clone)]
pub struct Node {
    label: String,
    children: Vec<Node>,
}

impl Node {
    /// A leaf.
    pub fn new(label: impl Into<String>) -> Self {
        Node {
            label: label.into(),
            children: vec![],
        }
    }

    /// Adds a child, builder style.
    pub fn child(mut self, c: Node) -> Self {
        self.children.push(c);
        self
    }

    /// Adds a leaf child, builder style.
    pub fn leaf(self, label: impl Into<String>) -> Self {
        self.child(Node::new(label))
    }

    /// Adds a child in place.
    pub fn push(&mut self, c: Node) {
        self.children.push(c);
    }
}

/// Output style for one stream.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    color: bool,
    unicode: bool,
}

impl Style {
    fn for_stream(is_terminal: bool) -> Self {
        match CHOICE.get().copied().unwrap_or(ColorChoice::Auto) {
            ColorChoice::Always => Style {
                color: true,
                unicode: true,
            },
            ColorChoice::Never => Style {
                color: false,
                unicode: false,
            },
            ColorChoice::Auto => {
                let rich = is_terminal && no_color_unset() && !dumb_terminal();
                Style {
                    color: rich,
                    unicode: rich,
                }
            }
        }
    }

    /// The style of stdout.
    pub fn for_stdout() -> Self {
        Self::for_stream(std::io::stdout().is_terminal())
    }

    /// The style of stderr.
    pub fn for_stderr() -> Self {
        Self::for_stream(std::io::stderr().is_terminal())
    }

    /// Paints `s` with an ANSI SGR code when colour is on.
    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// ASCII, no emoji, no colour (a pipe, `NO_COLOR`, `TERM=dumb`).
    #[cfg(test)]
    pub fn plain() -> Self {
        Style {
            color: false,
            unicode: false,
        }
    }

    /// Box drawing and emoji, no colour.
    #[cfg(test)]
    pub fn unicode_plain() -> Self {
        Style {
            color: false,
            unicode: true,
        }
    }

    /// `fix:` in the fix colour.
    pub fn fix(&self, fix: &str) -> String {
        format!("{} {fix}", self.paint("33", "fix:"))
    }
}

fn no_color_unset() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn dumb_terminal() -> bool {
    std::env::var_os("TERM").is_some_and(|t| t == "dumb")
}

/// The symbols keyrack's own text uses, and their plain-ASCII forms.
const ASCII: [(&str, &str); 9] = [
    (" 🔓", ""),
    (" 🔒", ""),
    (" ⛔", ""),
    (" ✓", ""),
    ("✓", "ok"),
    ("→", "->"),
    ("…", "..."),
    ("—", "-"),
    ("🔐 ", ""),
];

/// `s` without emoji or non-ASCII symbols of keyrack's own (user text such as paths is kept).
pub fn ascii(s: &str) -> String {
    let mut out = s.to_string();
    for (from, to) in ASCII {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}

/// Renders `🔐 keyrack <title>` and the tree under it (`keyrack <title>` and `|-` / `` `- ``
/// without unicode).
pub fn tree(style: Style, title: &str, nodes: &[Node]) -> String {
    let mut out = if style.unicode {
        format!("🔐 keyrack {title}\n")
    } else {
        format!("keyrack {title}\n")
    };
    render_children(style, nodes, "   ", &mut out);
    out
}

fn render_children(style: Style, nodes: &[Node], prefix: &str, out: &mut String) {
    let (mid, last_branch, bar, blank) = if style.unicode {
        ("├─ ", "└─ ", "│  ", "   ")
    } else {
        ("|- ", "`- ", "|  ", "   ")
    };
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let label = if style.unicode {
            n.label.clone()
        } else {
            ascii(&n.label)
        };
        let mut lines = label.lines();
        out.push_str(prefix);
        out.push_str(if last { last_branch } else { mid });
        out.push_str(lines.next().unwrap_or(""));
        out.push('\n');
        let next = format!("{prefix}{}", if last { blank } else { bar });
        for extra in lines {
            out.push_str(&next);
            out.push_str(extra);
            out.push('\n');
        }
        render_children(style, &n.children, &next, out);
    }
}

/// Writes a tree to stdout, in stdout's style.
pub fn out(title: &str, nodes: &[Node]) -> ui::Result<()> {
    ui::out(tree(Style::for_stdout(), title, nodes))
}

/// Writes a tree to stderr, in stderr's style.
pub fn err(title: &str, nodes: &[Node]) {
    ui::err(tree(Style::for_stderr(), title, nodes))
}

/// An error as tree nodes.
pub fn error_node(e: &Error, style: Style) -> Node {
    let mut n = Node::new(format!("{} {e}", style.paint("31", "error:")));
    if let Some(fix) = e.fix() {
        n.push(Node::new(style.fix(&fix)));
    }
    n
}

/// An error as the one JSON document of a failed command.
pub fn error_json(e: &Error) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "code": e.code(),
            "message": e.to_string(),
            "fix": e.fix(),
            "exitCode": e.exit_code(),
        }
    })
}

/// "8h59m left", "89d23h left", "expired".
pub fn time_left(t: jiff::Timestamp) -> String {
    let now = jiff::Timestamp::now();
    if t <= now {
        return "expired".into();
    }
    let secs = (t.as_second() - now.as_second()).max(0);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h >= 48 {
        format!("{}d{:02}h left", h / 24, h % 24)
    } else if h > 0 {
        format!("{h}h{m:02}m left")
    } else if m > 0 {
        format!("{m}m{s:02}s left")
    } else {
        format!("{s}s left")
    }
}

/// `granted 🔓`, `locked 🔒`, … in the status's colour.
pub fn status_label(status: Status, style: Style) -> String {
    let (code, text) = match status {
        Status::Granted => ("32", "granted 🔓"),
        Status::Locked => ("33", "locked 🔒"),
        Status::Absent => ("33", "absent"),
        Status::Blocked => ("31", "blocked ⛔"),
        Status::Lost => ("31", "lost"),
        Status::Errored => ("31", "errored"),
    };
    style.paint(code, text)
}

fn row_node(r: &KeyRow, style: Style, inline_fix: bool) -> Node {
    let mut n = Node::new(r.slug.clone());
    match (r.vault, r.source) {
        (Some(v), Some(Source::Env)) => n.push(Node::new(format!(
            "vault: {v} (from the process environment)"
        ))),
        (Some(v), _) => n.push(Node::new(format!("vault: {v}"))),
        _ => {}
    }
    if let Some(p) = &r.profile {
        n.push(Node::new(format!("profile: {p}")));
    }
    if let Some(by) = &r.granted_by {
        n.push(Node::new(format!("via: {by}")));
    }
    let mut s = Node::new(format!("status: {}", status_label(r.status, style)));
    if let Some(t) = r.expires_at {
        s.push(Node::new(format!("expires: {}", time_left(t))));
    }
    if let Some(l) = &r.limit {
        // the second horizon: what keeps the grant alive, and until when at the latest
        let mut n = Node::new(format!(
            "{}: until {} at the latest ({})",
            l.what,
            rfc3339(l.at),
            time_left(l.at)
        ));
        if let Some(why) = &l.why {
            n.push(Node::new(why.clone()));
        }
        s.push(n);
    }
    if let Some(reason) = &r.reason {
        s.push(Node::new(format!("reason: {reason}")));
    }
    if r.waived && r.status != Status::Granted {
        s.push(Node::new("waived: is-optional-if-has is satisfied"));
    } else if let (Some(f), true) = (&r.fix, inline_fix) {
        s.push(Node::new(style.fix(f)));
    }
    n.push(s);
    n
}

/// The rows as tree nodes (only those that need something with `only_problems`). A fix that
/// several rows share is shown once, after them; a row alone keeps its exact fix.
pub fn key_rows(rows: &[KeyRow], style: Style, only_problems: bool) -> Vec<Node> {
    let groups = fix_groups(rows);
    let shared: HashSet<usize> = groups
        .iter()
        .filter(|(_, members)| members.len() > 1)
        .flat_map(|(_, members)| members.iter().copied())
        .collect();
    let mut nodes: Vec<Node> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| !only_problems || !r.satisfied())
        .map(|(i, r)| row_node(r, style, !shared.contains(&i)))
        .collect();
    for (fix, members) in &groups {
        if members.len() > 1 {
            nodes.push(Node::new(style.fix(fix)));
        }
    }
    nodes
}

/// The rows of `list`: what the host manifest records, and whether the daemon holds it now.
pub fn entry_rows(rows: &[KeyRow], style: Style) -> Vec<Node> {
    rows.iter()
        .map(|r| {
            let mut n = Node::new(r.slug.clone());
            if let Some(v) = r.vault {
                n.push(Node::new(format!("vault: {v}")));
            }
            if let Some(p) = &r.profile {
                n.push(Node::new(format!("profile: {p}")));
            }
            if let Some(e) = &r.entry {
                n.push(Node::new(format!("mech: {}", e.mech)));
                if let Some(d) = &e.max_duration {
                    n.push(Node::new(format!(
                        "max duration: {}",
                        keyrack::grant::time::format_duration(*d)
                    )));
                }
            }
            let mut s = Node::new(format!("status: {}", status_label(r.status, style)));
            if let Some(t) = r.expires_at {
                s.push(Node::new(format!("expires: {}", time_left(t))));
            }
            n.push(s);
            if let Some(e) = &r.entry {
                n.push(Node::new(format!("updated: {}", e.updated_at)));
            }
            n
        })
        .collect()
}

/// The rows as JSON, with each granted row's `value` when `with_values` (never for a refusal).
pub fn rows_json(rows: &[KeyRow], with_values: bool) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(s) = r.secret.as_ref().filter(|_| with_values) {
                v["value"] = serde_json::Value::String(s.expose().to_string());
            }
            v
        })
        .collect()
}

/// A time as keyrack's JSON writes it (RFC 3339, UTC, seconds).
pub fn time_json(t: jiff::Timestamp) -> String {
    rfc3339(t)
}
