//! `keyrack firewall`: the CI path. Runs on a bare runner: only keyrack.yml and the secrets.
//!
//! - `--into github.actions`: stdout carries the `::add-mask::` commands (nothing else), the
//!   keys are appended to `$GITHUB_ENV`, the summary tree goes to stderr. When a key is blocked
//!   or errored, nothing is masked or written and the exit code is 2.
//! - `--into json`: stdout is one JSON object `{KEY: value}`, the summary tree goes to stderr;
//!   with `--json`, stdout is `{"keys": [row…], "values": {…} | null, "ignored": [name…]}`.

use std::collections::BTreeMap;

use keyrack::ops::ci::{self, FirewallOptions, FirewallReport, Secrets};
use keyrack::repo_manifest::RepoManifest;
use keyrack::Error;

use super::Ctx;
use crate::cli::{FirewallArgs, FirewallInto};
use crate::render::{self, Node, Style};
use crate::ui::{self, Failure, Result};

pub fn run(ctx: &Ctx, a: FirewallArgs) -> Result<i32> {
    if ctx.json && a.into == FirewallInto::GithubActions {
        return Err(Error::InvalidInput {
            what: "--json",
            value: "--into github.actions".into(),
            reason: "with --into github.actions, stdout carries the ::add-mask:: commands the runner reads".into(),
            hint: Some("drop --json (the summary goes to stderr), or use --into json".into()),
        }
        .into());
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io("read", "the current directory", e))?;
    let repo = RepoManifest::discover(&cwd)?;
    // Checked before anything is read or minted: a runner without a usable file fails fast.
    let github_env = match a.into {
        FirewallInto::GithubActions => Some(ci::github_env_path()?),
        FirewallInto::Json => None,
    };
    let secrets = Secrets::read(&a.from)?;
    let opts = FirewallOptions {
        env: a.env.clone(),
        allow_dangerous: a.allow_dangerous,
    };
    let report = ci::firewall(&repo, &secrets, &opts)?;
    let passed = report.passed();
    match (&github_env, a.into) {
        (Some(path), FirewallInto::GithubActions) => {
            if passed {
                ui::out(ci::mask_commands(&report.values).as_bytes())?;
                ci::append_github_env(path, &ci::github_env_text(&report.values)?)?;
            }
            let into = if passed {
                format!(
                    "into: $GITHUB_ENV ({}): {} masked",
                    path.display(),
                    count(report.values.len(), "key")
                )
            } else {
                "into: $GITHUB_ENV: nothing written (a key did not pass)".to_string()
            };
            summary(&repo, &a, &secrets, &report, into);
        }
        _ if ctx.json => {
            let values = passed.then(|| values_map(&report));
            ui::json(&serde_json::json!({
                "keys": render::rows_json(&report.rows, false),
                "values": values,
                "ignored": report.ignored,
            }))?;
        }
        _ => {
            if passed {
                ui::json(&values_map(&report))?;
            }
            let into = if passed {
                format!("into: stdout (JSON): {}", count(report.values.len(), "key"))
            } else {
                "into: stdout: nothing printed (a key did not pass)".to_string()
            };
            summary(&repo, &a, &secrets, &report, into);
        }
    }
    if passed {
        Ok(0)
    } else {
        Err(Failure::Shown(Error::NotGranted {
            missing: report.failed(),
            total: report.rows.len(),
            fix: None,
        }))
    }
}

fn values_map(report: &FirewallReport) -> BTreeMap<&str, &str> {
    report
        .values
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect()
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The summary tree, on stderr (stdout is the runner's or the JSON's).
fn summary(
    repo: &RepoManifest,
    a: &FirewallArgs,
    secrets: &Secrets,
    report: &FirewallReport,
    into: String,
) {
    let style = Style::for_stderr();
    let mut nodes = vec![
        Node::new(format!("env: {} ({})", a.env, repo.path.display())),
        Node::new(format!(
            "from: {}: {}",
            a.from,
            count(secrets.len(), "secret")
        )),
        Node::new(into),
    ];
    nodes.extend(render::key_rows(&report.rows, style, false));
    if !report.minted.is_empty() {
        nodes.push(Node::new(format!(
            "minted: {} (GitHub App installation tokens)",
            report.minted.join(", ")
        )));
    }
    if !report.ignored.is_empty() {
        nodes.push(Node::new(format!(
            "ignored: {} not declared for env {}: {}",
            count(report.ignored.len(), "secret"),
            a.env,
            report.ignored.join(", ")
        )));
    }
    render::err("firewall", &nodes);
}
