//! `unlock`, `relock`, `status`, `daemon`.

use crate::ui::{self, Result};
use keyrack::daemon::client::Client;
use keyrack::daemon::server::{Bound, Server};
use keyrack::ops::unlock::{self, RowStatus, UnlockOptions};

use super::Ctx;
use crate::cli::{DaemonCommand, RelockArgs, StatusArgs, UnlockArgs};
use crate::render::{time_left, tree, Node, Style};

pub fn unlock(ctx: &Ctx, a: UnlockArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    let opts = UnlockOptions {
        env: a.env,
        keys: a.keys,
        duration: a.duration.as_deref().map(unlock::parse_ttl).transpose()?,
        login: super::login_options(&a.login)?,
    };
    let rows = unlock::unlock(&rack, &opts)?;
    let ok = rows.iter().all(|r| r.status == RowStatus::Granted);
    if ctx.json {
        ui::json(&serde_json::json!({ "rows": rows }))?;
        return Ok(if ok { 0 } else { 2 });
    }
    let style = Style::for_stdout();
    let nodes: Vec<Node> = rows
        .iter()
        .map(|r| {
            let mut n = Node::new(r.slug.clone());
            if let Some(v) = r.vault {
                n.push(Node::new(format!("vault: {v}")));
            }
            let status = match r.status {
                RowStatus::Granted => style.paint("32", "granted 🔓"),
                RowStatus::Absent => style.paint("33", "absent"),
                RowStatus::Lost => style.paint("31", "lost"),
                RowStatus::Errored => style.paint("31", "errored"),
                RowStatus::Blocked => style.paint("31", "blocked ⛔"),
            };
            let mut s = Node::new(format!("status: {status}"));
            if let Some(t) = r.expires_at {
                s.push(Node::new(format!("expires: {}", time_left(t))));
            }
            if let Some(reason) = &r.reason {
                s.push(Node::new(format!("reason: {reason}")));
            }
            if let Some(f) = &r.fix {
                s.push(Node::new(format!("{} {f}", style.paint("33", "fix:"))));
            }
            n.child(s)
        })
        .collect();
    if nodes.is_empty() {
        ui::out(tree("unlock", &[Node::new("nothing in scope").leaf("fix: declare keys in keyrack.yml and set them: keyrack set --key <KEY> --env <env>")]))?;
        return Ok(0);
    }
    ui::out(tree("unlock", &nodes))?;
    Ok(if ok { 0 } else { 2 })
}

pub fn relock(ctx: &Ctx, a: RelockArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    let slugs = unlock::relock(&rack, a.env.as_deref(), &a.keys)?;
    if ctx.json {
        ui::json(&serde_json::json!({ "relocked": slugs }))?;
        return Ok(0);
    }
    let nodes: Vec<Node> = if slugs.is_empty() {
        vec![Node::new("nothing was unlocked")]
    } else {
        slugs
            .iter()
            .map(|s| Node::new(format!("{s}")).leaf("status: locked 🔒"))
            .collect()
    };
    ui::out(tree("relock", &nodes))?;
    Ok(0)
}

pub fn status(ctx: &Ctx, a: StatusArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    let unlock::SessionStatus {
        daemon,
        held,
        ended,
        released,
    } = unlock::status(&rack, a.env.as_deref())?;
    if ctx.json {
        ui::json(&serde_json::json!({
            "daemon": daemon.as_ref().map(|d| serde_json::json!({"pid": d.pid, "startedAt": d.started_at.as_millisecond()})),
            "grants": held,
            "ended": ended,
            "released": released,
        }))?;
        return Ok(0);
    }
    let mut nodes = Vec::new();
    if !released.is_empty() {
        let n = released.len();
        let mut node = Node::new(format!(
            "removed {n} file{} left by a daemon that stopped without releasing {}",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them" }
        ));
        for f in &released {
            node.push(Node::new(tilde(f)));
        }
        nodes.push(node);
    }
    if daemon.is_none() {
        nodes.push(
            Node::new("daemon: not running (nothing unlocked)")
                .leaf("fix: keyrack unlock --env <env>"),
        );
    } else if held.is_empty() {
        nodes.push(Node::new("nothing unlocked").leaf("fix: keyrack unlock --env <env>"));
    }
    for g in &held {
        nodes.push(
            Node::new(g.slug.to_string())
                .leaf(format!("vault: {}", g.vault))
                .leaf(format!("expires: {}", time_left(g.expires_at))),
        );
    }
    ui::out(tree("status", &nodes))?;
    Ok(0)
}

/// `~/…` for paths under `$HOME`.
fn tilde(p: &std::path::Path) -> String {
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => match p.strip_prefix(&h) {
            Ok(rest) => format!("~/{}", rest.display()),
            Err(_) => p.display().to_string(),
        },
        None => p.display().to_string(),
    }
}

pub fn daemon(ctx: &Ctx, c: DaemonCommand) -> Result<i32> {
    if matches!(c, DaemonCommand::Run) {
        // nothing the starter had open stays open in the daemon
        keyrack::daemon::platform::close_inherited_fds();
    }
    let rack = ctx.rack()?;
    let client = Client::new(rack.home());
    match c {
        DaemonCommand::Run => match Server::bind(rack.home())? {
            Bound::AlreadyRunning => Ok(0),
            Bound::Ready(server) => {
                // Ready: the starter reads our stdout until it closes; errors are reported
                // through it until now, and nothing is printed from here on.
                keyrack::daemon::platform::detach_stdio()
                    .map_err(|e| keyrack::Error::io("redirect", "/dev/null", e))?;
                server.serve(keyrack::vault::VaultRenewer::new(rack.home().clone()))?;
                Ok(0)
            }
        },
        DaemonCommand::Status => {
            let st = client.status()?;
            if ctx.json {
                ui::json(&serde_json::json!({
                    "running": st.is_some(),
                    "socket": client.socket_path(),
                    "pid": st.as_ref().map(|s| s.pid),
                    "grants": st.as_ref().map(|s| s.grants.len()).unwrap_or(0),
                }))?;
                return Ok(0);
            }
            let n = match &st {
                Some(s) => Node::new(format!("running: pid {}", s.pid))
                    .leaf(format!("socket: {}", client.socket_path().display()))
                    .leaf(format!("grants: {}", s.grants.len())),
                None => Node::new("not running")
                    .leaf(format!("socket: {}", client.socket_path().display()))
                    .leaf("note: keyrack unlock starts it"),
            };
            ui::out(tree("daemon status", &[n]))?;
            Ok(0)
        }
        DaemonCommand::Prune => {
            let stopped = client.shutdown()?;
            if ctx.json {
                ui::json(&serde_json::json!({ "stopped": stopped }))?;
            } else {
                let n = Node::new(if stopped {
                    "stopped: every grant forgotten"
                } else {
                    "not running"
                });
                ui::out(tree("daemon prune", &[n]))?;
            }
            Ok(0)
        }
    }
}
