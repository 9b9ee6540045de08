//! Rendering: compact trees for humans, JSON for machines, errors with a `fix:` line.

use std::io::IsTerminal;

use keyrack::Error;

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
#[derive(Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    /// Colour when the stream is a terminal and `NO_COLOR` is unset.
    pub fn for_stdout() -> Self {
        Style {
            color: std::io::stdout().is_terminal() && no_color_unset(),
        }
    }

    /// Same for stderr.
    pub fn for_stderr() -> Self {
        Style {
            color: std::io::stderr().is_terminal() && no_color_unset(),
        }
    }

    /// Paints `s` with an ANSI SGR code when colour is on.
    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn no_color_unset() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Renders `🔐 keyrack <title>` and the tree under it.
pub fn tree(title: &str, nodes: &[Node]) -> String {
    let mut out = format!("🔐 keyrack {title}\n");
    render_children(nodes, "   ", &mut out);
    out
}

fn render_children(nodes: &[Node], prefix: &str, out: &mut String) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let mut lines = n.label.lines();
        out.push_str(prefix);
        out.push_str(if last { "└─ " } else { "├─ " });
        out.push_str(lines.next().unwrap_or(""));
        out.push('\n');
        let next = format!("{prefix}{}", if last { "   " } else { "│  " });
        for extra in lines {
            out.push_str(&next);
            out.push_str(extra);
            out.push('\n');
        }
        render_children(&n.children, &next, out);
    }
}

/// An error as tree nodes.
pub fn error_node(e: &Error, style: Style) -> Node {
    let mut n = Node::new(format!("{} {e}", style.paint("31", "error:")));
    if let Some(fix) = e.fix() {
        n.push(Node::new(format!("{} {fix}", style.paint("33", "fix:"))));
    }
    n
}

/// An error as JSON.
pub fn error_json(e: &Error) -> serde_json::Value {
    serde_json::json!({
        "error": { "code": e.code(), "message": e.to_string(), "fix": e.fix() }
    })
}

/// "in 8h59m", "expired".
pub fn time_left(expires_at: keyrack::grant::Timestamp) -> String {
    let now = keyrack::grant::time::now();
    if expires_at <= now {
        return "expired".into();
    }
    let secs = expires_at.duration_since(now).as_secs().max(0) as u64;
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m left")
    } else if m > 0 {
        format!("{m}m{s:02}s left")
    } else {
        format!("{s}s left")
    }
}
