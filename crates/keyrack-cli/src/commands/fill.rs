//! `keyrack fill` (ask for each missing key) and `keyrack import` (dotenv lines); every key goes
//! through `set`'s path and is proven before it is recorded.

use std::io::{IsTerminal, Read};

use keyrack::ops::fill::{self, FillOptions};
use keyrack::ops::import::{self, ImportOptions};
use keyrack::Error;

use super::Ctx;
use crate::cli::{FillArgs, ImportArgs};
use crate::render::{self, Node, Style};
use crate::ui;

pub fn fill(ctx: &Ctx, a: FillArgs) -> ui::Result<i32> {
    let rack = ctx.rack()?;
    let opts = FillOptions {
        env: a.env,
        vault: a.vault,
        login: super::login_options(&a.login),
        allow_dangerous: a.allow_dangerous,
    };
    let (env, declared, missing) = fill::plan(&rack, &opts)?;
    if missing.is_empty() {
        if ctx.json {
            ui::json(&fill::FillReport {
                env,
                declared,
                rows: vec![],
                stopped: false,
            })?;
        } else {
            render::out(
                "fill",
                &[Node::new(format!(
                    "env {env}: all {declared} declared key(s) are set on this host"
                ))],
            )?;
        }
        return Ok(0);
    }
    if !(ui::stdin_is_terminal() && ui::stderr_is_terminal()) {
        return Err(fill::needs_terminal(&rack, &env, &missing).into());
    }
    ui::err(format!(
        "keyrack fill: env {env} declares {declared} key(s); {} not set on this host\n",
        missing.len()
    ));
    let mut ask = |m: &fill::Missing, n: usize, of: usize, refused: Option<&str>| {
        crate::interact::fill_answer(&rack, &opts, m, n, of, refused)
    };
    let report = fill::run(&rack, &opts, &env, declared, &missing, &mut ask)?;
    let code = if report.stopped {
        130
    } else if report.rows.iter().all(|r| r.status == fill::RowStatus::Set) {
        0
    } else {
        2
    };
    if ctx.json {
        ui::json(&report)?;
        return Ok(code);
    }
    let style = Style::for_stdout();
    let nodes: Vec<Node> = report
        .rows
        .iter()
        .map(|r| {
            let mut n = Node::new(r.slug.clone()).leaf(format!("vault: {}", r.vault));
            let status = match r.status {
                fill::RowStatus::Set => {
                    style.paint("32", "set ✓ (store → unlock → get → relock proven)")
                }
                fill::RowStatus::Skipped => style.paint("33", "skipped"),
                fill::RowStatus::Failed => style.paint("31", "refused"),
                fill::RowStatus::NotAsked => style.paint("33", "not asked (stopped)"),
            };
            let mut s = Node::new(format!("status: {status}"));
            if r.status == fill::RowStatus::Failed {
                if let Some(why) = &r.reason {
                    s.push(Node::new(format!("reason: {why}")));
                }
            }
            if let Some(f) = &r.fix {
                s.push(Node::new(format!("{} {f}", style.paint("33", "fix:"))));
            }
            n.push(s);
            n
        })
        .collect();
    render::out("fill", &nodes)?;
    if report.stopped {
        ui::err("keyrack fill: cancelled\n");
    }
    Ok(code)
}

fn read_input(
    a: &ImportArgs,
    env_hint: &str,
) -> keyrack::Result<(zeroize::Zeroizing<String>, String)> {
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    let from = match &a.file {
        Some(p) => {
            std::fs::File::open(p)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| Error::io("read", p, e))?;
            p.display().to_string()
        }
        None => {
            if std::io::stdin().is_terminal() {
                return Err(Error::InvalidInput {
                    what: "input",
                    value: "standard input".into(),
                    reason: "import reads dotenv lines (KEY=value) from a file or standard input, and standard input is a terminal".into(),
                    hint: Some(format!("keyrack import{env_hint} < .env   (or: keyrack import{env_hint} .env)")),
                });
            }
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io("read", "standard input", e))?;
            "standard input".into()
        }
    };
    let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
        let mut v = e.into_bytes();
        zeroize::Zeroize::zeroize(&mut v);
        Error::SecretInput {
            reason: format!("{from} is not UTF-8 text"),
            hint: "save it as UTF-8 (values of binary data: base64 them)".into(),
        }
    })?;
    Ok((zeroize::Zeroizing::new(text), from))
}

pub fn import(ctx: &Ctx, a: ImportArgs) -> ui::Result<i32> {
    let env_hint = a
        .env
        .as_deref()
        .map(|e| format!(" --env {e}"))
        .unwrap_or_default();
    let (text, from) = read_input(&a, &env_hint)?;
    let rack = ctx.rack()?;
    let opts = ImportOptions {
        env: a.env,
        vault: a.vault,
        declare: a.declare,
        allow_dangerous: a.allow_dangerous,
        login: super::login_options(&a.login),
    };
    let report = import::run(&rack, &opts, &text, &from)?;
    drop(text);
    let ok = report
        .rows
        .iter()
        .all(|r| r.status == import::RowStatus::Set);
    let code = if ok { 0 } else { 2 };
    if ctx.json {
        ui::json(&report)?;
        return Ok(code);
    }
    let style = Style::for_stdout();
    let mut nodes: Vec<Node> = report
        .rows
        .iter()
        .map(|r| {
            let mut n = Node::new(match &r.slug {
                Some(s) => format!("{s} (line {})", r.line),
                None => format!("{} (line {})", r.key, r.line),
            });
            if let Some(v) = r.vault {
                n.push(Node::new(format!("vault: {v}")));
            }
            let status = match r.status {
                import::RowStatus::Set if r.replaced => {
                    style.paint("32", "set ✓ (replaced the previous value; proven)")
                }
                import::RowStatus::Set => style.paint("32", "set ✓ (proven)"),
                import::RowStatus::Skipped => style.paint("33", "skipped"),
                import::RowStatus::Refused => style.paint("31", "refused"),
            };
            let mut s = Node::new(format!("status: {status}"));
            if r.declared {
                s.push(Node::new("declared in keyrack.yml"));
            }
            if let Some(why) = &r.reason {
                s.push(Node::new(format!("reason: {why}")));
            }
            if let Some(f) = &r.fix {
                s.push(Node::new(format!("{} {f}", style.paint("33", "fix:"))));
            }
            n.push(s);
            n
        })
        .collect();
    if nodes.is_empty() {
        nodes.push(Node::new(format!("{from}: no KEY=value lines")));
    }
    render::out("import", &nodes)?;
    Ok(code)
}
