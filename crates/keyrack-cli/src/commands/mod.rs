//! One module per command group; each turns arguments into library calls and renders.

mod aws;
mod aws_verbs;
pub mod complete;
mod del;
mod direnv;
mod doctor;
mod fill;
mod firewall;
mod get;
mod init;
mod list;
mod man;
mod recipient;
mod recover;
mod session;
mod set;

use std::path::PathBuf;

use keyrack::ops::Rack;
use keyrack::slug::Owner;
use keyrack::Result;

use crate::cli::{Cli, Command, DaemonCommand, RecipientCommand};
use crate::ui;

/// What every command needs.
pub struct Ctx {
    pub json: bool,
    pub owner: Owner,
    pub identity: Option<PathBuf>,
}

/// Sign-in options from flags (already parsed and checked by clap).
pub fn login_options(a: &crate::cli::LoginArgs) -> keyrack::aws::login::LoginOptions {
    use keyrack::aws::login::{Driver, LoginOptions};
    let mut o = LoginOptions {
        device_code: a.device_code,
        no_prompt: a.no_prompt,
        ..Default::default()
    };
    if let Some(t) = a.login_timeout {
        o.timeout = t;
    }
    if a.login_driver == Some(crate::cli::LoginDriver::AwsCli) {
        o.driver = Driver::AwsCli;
    }
    o
}

impl Ctx {
    /// The rack, asking the person at this terminal whatever needs them.
    pub fn rack(&self) -> Result<Rack> {
        Ok(Rack::from_env(self.owner.clone(), self.identity.clone())?
            .with_interact(std::sync::Arc::new(crate::interact::Terminal)))
    }
}

/// The name shown in the tree header.
pub fn title(c: &Command) -> &'static str {
    match c {
        Command::Init(a) if a.recover => "init --recover",
        Command::Init(_) => "init",
        Command::Recipient(RecipientCommand::Add { .. }) => "recipient add",
        Command::Recipient(RecipientCommand::List) => "recipient list",
        Command::Recipient(RecipientCommand::Remove { .. }) => "recipient remove",
        Command::Set(_) => "set",
        Command::Get(_) => "get",
        Command::Source(_) => "source",
        Command::Exec(_) => "exec",
        Command::Unlock(_) => "unlock",
        Command::Relock(_) => "relock",
        Command::Status(_) => "status",
        Command::List(_) => "list",
        Command::Del(_) => "del",
        Command::Daemon(DaemonCommand::Status) => "daemon status",
        Command::Daemon(DaemonCommand::Prune) => "daemon prune",
        Command::Daemon(DaemonCommand::Run) => "daemon run",
        Command::Aws(crate::cli::AwsCommand::Credentials { .. }) => "aws credentials",
        Command::Aws(crate::cli::AwsCommand::Logout { .. }) => "aws logout",
        Command::Aws(crate::cli::AwsCommand::Sync(_)) => "aws sync",
        Command::Aws(crate::cli::AwsCommand::Console(_)) => "aws console",
        Command::Aws(crate::cli::AwsCommand::Env(_)) => "aws env",
        Command::Firewall(_) => "firewall",
        Command::Completions { .. } => "completions",
        Command::Doctor(_) => "doctor",
        Command::Fill(_) => "fill",
        Command::Import(_) => "import",
        Command::Man(_) => "man",
    }
}

/// Runs the command; returns the exit code.
pub fn run(cli: Cli) -> ui::Result<i32> {
    let ctx = Ctx {
        json: cli.global.json,
        owner: Owner::new(cli.global.owner.as_deref())?,
        identity: cli.global.identity.clone(),
    };
    match cli.command {
        Command::Init(a) if a.recover => recover::run(&ctx, a),
        Command::Source(a) if a.unset => direnv::unset(&ctx, a),
        Command::Doctor(a) => doctor::run(&ctx, a),
        Command::Fill(a) => fill::fill(&ctx, a),
        Command::Import(a) => fill::import(&ctx, a),
        Command::Man(a) => man::run(&ctx, a),
        Command::Init(a) => init::run(&ctx, a),
        Command::Recipient(c) => recipient::run(&ctx, c),
        Command::Set(a) => set::run(&ctx, *a),
        Command::Get(a) => get::get(&ctx, a),
        Command::Source(a) => get::source(&ctx, a),
        Command::Exec(a) => get::exec(&ctx, a),
        Command::Unlock(a) => session::unlock(&ctx, a),
        Command::Relock(a) => session::relock(&ctx, a),
        Command::Status(a) => session::status(&ctx, a),
        Command::List(a) => list::run(&ctx, a),
        Command::Del(a) => del::run(&ctx, a),
        Command::Daemon(c) => session::daemon(&ctx, c),
        Command::Aws(c) => aws::run(&ctx, c),
        Command::Firewall(a) => firewall::run(&ctx, a),
        Command::Completions { shell } => complete::registration(&ctx, shell),
    }
}
