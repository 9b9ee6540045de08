//! Command-line definitions (clap derive). `--help` text is product copy.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use keyrack::mech::Mech;
use keyrack::vault::VaultKind;

/// keyrack: a credential front desk for developers and the robots they run.
///
/// A repository declares the keys it needs per env (keyrack.yml); this machine records which
/// vault holds each key; `unlock` pulls keys into a per-session daemon for a bounded time;
/// `get` / `source` / `exec` hand them to tools in milliseconds; `relock` forgets them.
#[derive(Debug, Parser)]
#[command(
    name = "keyrack",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Identity partition on this machine (robots get their own, smaller set of keys).
    #[arg(long, global = true, env = "KEYRACK_OWNER", value_name = "OWNER")]
    pub owner: Option<String>,
    /// Identity used to decrypt (age identity file or OpenSSH private key).
    #[arg(long, global = true, env = "KEYRACK_IDENTITY", value_name = "PATH")]
    pub identity: Option<PathBuf>,
    /// Print exactly one JSON document on stdout, errors included (see docs/json.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// Colour, emoji and box-drawing characters: `auto` uses them only on a terminal without
    /// NO_COLOR or TERM=dumb (else plain ASCII); `always`; `never`.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// When to use colour and non-ASCII symbols.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set or TERM=dumb.
    Auto,
    /// Always (even in a pipe).
    Always,
    /// Never: plain ASCII.
    Never,
}

/// `--vault`: every vault this build has, with `aws.iam.sso` as an alias of `aws.config`.
fn vault_parser() -> impl TypedValueParser<Value = VaultKind> {
    let values = VaultKind::ALL.map(|k| {
        let v = PossibleValue::new(k.as_str()).help(match k {
            VaultKind::OsSecure => "an age file per key, encrypted to every recipient (default)",
            VaultKind::OsDirect => "plaintext JSON, mode 0600",
            VaultKind::OsDaemon => "the session daemon's memory only",
            VaultKind::OsEnvvar => "the process environment (read-only; CI)",
            VaultKind::AwsConfig => "an AWS SSO profile in ~/.aws/config (default for AWS_PROFILE)",
            VaultKind::AwsParams => "an AWS SSM Parameter Store SecureString, shared by a team",
            VaultKind::OnePassword => {
                "1Password through the op CLI: an op:// reference (default) or an item keyrack creates"
            }
            VaultKind::OsKeychain => "the OS credential store (Secret Service, macOS Keychain)",
        });
        if k == VaultKind::AwsConfig {
            v.alias("aws.iam.sso")
        } else {
            v
        }
    });
    PossibleValuesParser::new(values).map(|s| {
        s.parse::<VaultKind>()
            .expect("every possible value is a vault")
    })
}

/// `--mech`: every mech, with the upper-case names of rhachet as aliases.
fn mech_parser() -> impl TypedValueParser<Value = Mech> {
    let values = Mech::ALL.map(|m| {
        let (help, alias) = match m {
            Mech::Replica => ("a static copy (default)", "PERMANENT_VIA_REPLICA"),
            Mech::Reference => (
                "points at an item kept elsewhere",
                "PERMANENT_VIA_REFERENCE",
            ),
            Mech::Session => ("memory only, for the session", "EPHEMERAL_VIA_SESSION"),
            Mech::AwsSso => ("an AWS SSO profile", "EPHEMERAL_VIA_AWS_SSO"),
            Mech::GithubApp => (
                "GitHub App credentials, minted into 1 h installation tokens",
                "EPHEMERAL_VIA_GITHUB_APP",
            ),
        };
        PossibleValue::new(m.as_str()).help(help).alias(alias)
    });
    PossibleValuesParser::new(values)
        .map(|s| s.parse::<Mech>().expect("every possible value is a mech"))
}

/// A duration such as `9h`, `30m` or `1h30m`.
pub fn duration(s: &str) -> Result<Duration, String> {
    keyrack::ops::set::parse_duration("duration", s).map_err(value_error)
}

/// A grant's lifetime: a duration, at most the daemon's cap.
fn ttl(s: &str) -> Result<Duration, String> {
    keyrack::ops::unlock::parse_ttl(s).map_err(value_error)
}

fn value_error(e: keyrack::Error) -> String {
    match e {
        keyrack::Error::InvalidInput { reason, hint, .. } => {
            format!("{reason}; {}", hint.unwrap_or_default())
        }
        other => other.to_string(),
    }
}

/// How keyrack signs in to AWS SSO.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LoginDriver {
    /// keyrack's own client (default).
    Native,
    /// Runs `aws sso login --profile P` and imports its token.
    AwsCli,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this host's encrypted manifest (idempotent); with --org, create keyrack.yml.
    Init(InitArgs),
    /// Manage who can decrypt this host's keys.
    #[command(subcommand)]
    Recipient(RecipientCommand),
    /// Store a key in a vault, prove it reads back, and declare it in keyrack.yml.
    Set(Box<SetArgs>),
    /// Read granted keys (from the session daemon, then the process environment).
    Get(GetArgs),
    /// Print `export KEY='…'` lines for the granted keys of an env.
    Source(SourceArgs),
    /// Run a command with the granted keys of an env in its environment.
    Exec(ExecArgs),
    /// Pull keys out of their vaults into the session daemon for a bounded time.
    Unlock(UnlockArgs),
    /// Forget unlocked keys.
    Relock(RelockArgs),
    /// What the session daemon holds now (never secrets).
    Status(StatusArgs),
    /// Every key this host has configured (no secrets).
    List(ListArgs),
    /// Remove this host's copy of a key (host entry, vault copy, daemon grant).
    Del(DelArgs),
    /// Inspect or stop the session daemon.
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// AWS SSO helpers: credential_process, logout, sync, console, env.
    #[command(subcommand)]
    Aws(AwsCommand),
    /// CI: pass the secrets of a CI job (`${{ toJSON(secrets) }}`) through the firewall into the
    /// keys keyrack.yml declares for an env (masked, into $GITHUB_ENV, or as JSON).
    Firewall(FirewallArgs),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Check the whole set-up: identity, host manifest, daemon, repo manifest, AWS; each with
    /// its fix.
    Doctor(DoctorArgs),
    /// Ask for every key the repo declares for an env that this host lacks (guided).
    Fill(FillArgs),
    /// Set many keys at once from dotenv lines (KEY=value), each proven like `set`.
    Import(ImportArgs),
    /// Write the manual pages (one per command), or print keyrack(1).
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct DoctorArgs {}

#[derive(Debug, Args)]
pub struct FillArgs {
    /// The env (inferred when keyrack.yml declares only one).
    #[arg(long)]
    pub env: Option<String>,
    /// The vault for every value (default: os.secure; aws.config for AWS_PROFILE).
    #[arg(long, value_parser = vault_parser())]
    pub vault: Option<VaultKind>,
    /// Store values that look like long-lived tokens.
    #[arg(long)]
    pub allow_dangerous: bool,
    #[command(flatten)]
    pub login: LoginArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The dotenv file (default: standard input).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The env (inferred when keyrack.yml declares only one).
    #[arg(long)]
    pub env: Option<String>,
    /// The vault for every key (default: os.secure; aws.config for AWS_PROFILE, whose value
    /// names an existing SSO profile).
    #[arg(long, value_parser = vault_parser())]
    pub vault: Option<VaultKind>,
    /// Also add keys keyrack.yml does not declare for the env (default: skip them).
    #[arg(long)]
    pub declare: bool,
    /// Store values that look like long-lived tokens.
    #[arg(long)]
    pub allow_dangerous: bool,
    #[command(flatten)]
    pub login: LoginArgs,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write keyrack.1, keyrack-get.1, … into this directory (default: print keyrack.1).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Create keyrack.yml here with this org (if none exists).
    #[arg(long)]
    pub org: Option<String>,
    /// Envs of a new keyrack.yml (repeatable; default: test, prod).
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
    /// Label of this machine's recipient (default: user@host).
    #[arg(long)]
    pub label: Option<String>,
    /// Rebuild a lost host manifest from the vault files and inventory markers left behind.
    #[arg(long, conflicts_with_all = ["org", "envs"])]
    pub recover: bool,
}

#[derive(Debug, Subcommand)]
pub enum RecipientCommand {
    /// Add a recipient and re-encrypt everything to it.
    Add {
        /// age public key (age1…) or SSH public key line (ssh-ed25519 …, ssh-rsa …).
        #[arg(long)]
        pubkey: String,
        /// A unique label, e.g. laptop.
        #[arg(long)]
        label: String,
    },
    /// List recipients.
    List,
    /// Remove a recipient and re-encrypt everything without it.
    Remove {
        /// The recipient's label.
        #[arg(long)]
        label: String,
    },
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The key (an environment-variable name).
    #[arg(long)]
    pub key: String,
    /// The env (inferred from keyrack.yml when unambiguous).
    #[arg(long)]
    pub env: Option<String>,
    /// The vault (default: os.secure; aws.config for AWS_PROFILE).
    #[arg(long, value_parser = vault_parser())]
    pub vault: Option<VaultKind>,
    /// The mech (default: the vault's).
    #[arg(long, value_parser = mech_parser())]
    pub mech: Option<Mech>,
    /// `@all` for a machine-wide key not tied to this repository.
    #[arg(long)]
    pub org: Option<String>,
    /// External id, for vaults that reference a secret kept elsewhere (an AWS profile name, an
    /// op://vault/item/field reference, an SSM parameter name: default /keyrack/<org>/<env>/<KEY>).
    #[arg(long)]
    pub exid: Option<String>,
    /// The 1Password vault a 1password replica item is created in (default: your built-in
    /// Private/Personal vault).
    #[arg(long, value_name = "VAULT")]
    pub op_vault: Option<String>,
    /// The longest a grant of this key may live (e.g. 1h); kept by a later set that omits it.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub max_duration: Option<Duration>,
    /// Store a value that looks like a long-lived token (get/source/exec still block it without
    /// --allow-dangerous).
    #[arg(long)]
    pub allow_dangerous: bool,
    #[command(flatten)]
    pub aws: AwsProfileArgs,
    #[command(flatten)]
    pub params: ParamsArgs,
    #[command(flatten)]
    pub login: LoginArgs,
    #[command(flatten)]
    pub github: GithubAppArgs,
}

/// GitHub App credentials (github.app): minted into an installation token at every unlock.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "GitHub App (github.app)")]
pub struct GithubAppArgs {
    /// The app's id, or its client id (Iv…).
    #[arg(long, value_name = "ID")]
    pub app_id: Option<String>,
    /// The installation tokens are minted for.
    #[arg(long, value_name = "ID")]
    pub installation_id: Option<String>,
    /// The app's private key file (.pem, PKCS#1 or PKCS#8); read from the file and stored
    /// encrypted in the vault.
    #[arg(long, value_name = "PEM_PATH")]
    pub private_key: Option<PathBuf>,
}

/// Where `keyrack firewall` puts the keys that pass.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FirewallInto {
    /// `::add-mask::` for every line of every value (stdout), then appended to $GITHUB_ENV.
    #[value(name = "github.actions")]
    GithubActions,
    /// One JSON object {KEY: value} on stdout.
    Json,
}

/// `--from`: `json(env://VAR)` or `json(stdin://)`.
fn secrets_from(s: &str) -> Result<keyrack::ops::ci::SecretsFrom, String> {
    s.parse().map_err(value_error)
}

#[derive(Debug, Args)]
pub struct FirewallArgs {
    /// The env whose declared keys pass (its own keys and env.all's).
    #[arg(long)]
    pub env: String,
    /// Where the secrets come from: json(env://VAR) (with `env: VAR: ${{ toJSON(secrets) }}` on
    /// the step) or json(stdin://).
    #[arg(long, value_name = "SOURCE", value_parser = secrets_from)]
    pub from: keyrack::ops::ci::SecretsFrom,
    /// Where the keys go: github.actions ($GITHUB_ENV, masked) or json (stdout).
    #[arg(long, value_enum, value_name = "TARGET")]
    pub into: FirewallInto,
    /// Pass values that look like long-lived tokens.
    #[arg(long)]
    pub allow_dangerous: bool,
}

/// Where an aws.params key lives in SSM Parameter Store.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "SSM Parameter Store (aws.params)")]
pub struct ParamsArgs {
    /// The KMS key that encrypts the SecureString (key id, ARN or alias/NAME; default: the
    /// account's alias/aws/ssm).
    #[arg(long, value_name = "KEY")]
    pub kms_key_id: Option<String>,
    /// The aws.config key whose role credentials sign (default: AWS_PROFILE of the same env;
    /// machine-wide keys use the AWS credential chain).
    #[arg(long, value_name = "KEY")]
    pub via: Option<String>,
}

/// A new AWS SSO profile, without the guided set-up (aws.config).
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "AWS SSO profile (aws.config)")]
pub struct AwsProfileArgs {
    /// AWS access portal start URL.
    #[arg(long, value_name = "URL")]
    pub sso_start_url: Option<String>,
    /// IAM Identity Center region.
    #[arg(long, value_name = "REGION")]
    pub sso_region: Option<String>,
    /// Account id.
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// Role (permission set) name.
    #[arg(long, value_name = "ROLE")]
    pub role_name: Option<String>,
    /// Profile name to write in ~/.aws/config.
    #[arg(long, value_name = "NAME")]
    pub profile_name: Option<String>,
    /// aws.config: the profile's default region (default: the SSO region). aws.params: the SSM
    /// region (default: the signing profile's region; --org @all: AWS_REGION).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// The sso-session name for a portal ~/.aws/config has none for yet (default: the org); a
    /// portal keeps the one it has.
    #[arg(long, value_name = "NAME")]
    pub sso_session: Option<String>,
}

/// How keyrack may sign in to AWS SSO.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "AWS sign-in")]
pub struct LoginArgs {
    /// Sign in with a device code (for SSH sessions or another device's browser).
    #[arg(long)]
    pub device_code: bool,
    /// Give up waiting for the sign-in after this long (default 5m).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub login_timeout: Option<Duration>,
    /// Never sign in; fail if the SSO session is not valid.
    #[arg(long)]
    pub no_prompt: bool,
    /// Who signs in: keyrack's own client (default), or `aws sso login --profile P`.
    #[arg(long, value_name = "DRIVER", value_enum)]
    pub login_driver: Option<LoginDriver>,
}

#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// Print role credentials for credential_process (JSON, Version 1); never opens a browser.
    Credentials {
        /// The profile.
        #[arg(long)]
        profile: String,
    },
    /// Sign the profile's SSO session out server-side and delete both copies of its token.
    Logout {
        /// The profile.
        #[arg(long)]
        profile: String,
    },
    /// Write a profile for every account and role you can reach through an sso-session
    /// (shown as a diff first; marked `keyrack_generated`).
    Sync(AwsSyncArgs),
    /// Sign in to the AWS console with an unlocked profile's role credentials (opens the
    /// browser, or prints the URL); never signs in to SSO.
    Console(AwsConsoleArgs),
    /// Print an unlocked profile's role credentials as environment variables
    /// (AWS_ACCESS_KEY_ID, …) for tools that cannot read SSO profiles; never signs in.
    Env(AwsEnvArgs),
}

#[derive(Debug, Args)]
pub struct AwsSyncArgs {
    /// The sso-session to list accounts and roles through (`[sso-session NAME]`).
    #[arg(long, value_name = "NAME")]
    pub sso_session: String,
    /// Profile names: placeholders {account_name} {account_id} {role_name} {sso_session};
    /// the result is made a valid profile name.
    #[arg(
        long,
        value_name = "TEMPLATE",
        default_value = "{account_name}.{role_name}"
    )]
    pub template: String,
    /// The region of new profiles (default: the SSO region).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Also remove profiles this command generated whose account or role is gone.
    #[arg(long)]
    pub prune: bool,
    /// Write the changes without asking.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub login: LoginArgs,
}

#[derive(Debug, Args)]
pub struct AwsConsoleArgs {
    /// The profile (unlocked: keyrack unlock).
    #[arg(long)]
    pub profile: String,
    /// Print the sign-in URL on stdout instead of opening the browser (it is a credential for
    /// 15 minutes).
    #[arg(long)]
    pub print: bool,
    /// How long the console session lasts (15m to 12h, and never past the role credentials;
    /// default: as long as the credentials).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub duration: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct AwsEnvArgs {
    /// The profile (unlocked: keyrack unlock).
    #[arg(long)]
    pub profile: String,
    /// Quote for this shell.
    #[arg(long, value_enum, default_value_t = Shell::Bash)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).multiple(true).args(["names", "keys", "for_"])))]
pub struct GetArgs {
    /// The key(s) to read.
    #[arg(value_name = "KEY")]
    pub names: Vec<String>,
    /// The key(s) to read (same as the positional KEY).
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// `repo`: every key keyrack.yml declares for the env.
    #[arg(long = "for", value_name = "repo", value_parser = ["repo"], conflicts_with_all = ["keys", "names"])]
    pub for_: Option<String>,
    /// The env (inferred when the key is declared in only one).
    #[arg(long)]
    pub env: Option<String>,
    /// `@all` for machine-wide keys.
    #[arg(long)]
    pub org: Option<String>,
    /// Print only the raw value (no newline); one key only (several: --json).
    #[arg(long, conflicts_with = "json")]
    pub value: bool,
    /// Hand out values that look like long-lived tokens.
    #[arg(long)]
    pub allow_dangerous: bool,
    /// Unlock locked keys first (decrypts; may prompt).
    #[arg(long)]
    pub unlock: bool,
}

/// Shells `source` can quote for.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The env.
    #[arg(long)]
    pub env: Option<String>,
    /// Only these keys (default: all the env declares).
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// Print nothing unless every required key is granted (default).
    #[arg(long, conflicts_with = "lenient")]
    pub strict: bool,
    /// Print what is granted, skip the rest.
    #[arg(long)]
    pub lenient: bool,
    /// Quote for this shell.
    #[arg(long, value_enum, default_value_t = Shell::Bash)]
    pub shell: Shell,
    /// Hand out values that look like long-lived tokens.
    #[arg(long)]
    pub allow_dangerous: bool,
    /// Unlock locked keys first (decrypts; may prompt on the terminal, never on stdout).
    #[arg(long)]
    pub unlock: bool,
    /// Print what undoes it instead (`unset K…`; fish: `set -e K`), for exactly these keys.
    #[arg(long, conflicts_with_all = ["strict", "lenient", "allow_dangerous", "unlock"])]
    pub unset: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The env.
    #[arg(long)]
    pub env: Option<String>,
    /// Only these keys (default: all the env declares).
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// Run even if some keys are not granted.
    #[arg(long)]
    pub lenient: bool,
    /// Hand out values that look like long-lived tokens.
    #[arg(long)]
    pub allow_dangerous: bool,
    /// Unlock locked keys first (decrypts; may prompt).
    #[arg(long)]
    pub unlock: bool,
    /// Also pass this unlocked AWS profile's role credentials (AWS_ACCESS_KEY_ID, …; and its
    /// region) and unset AWS_PROFILE; alone, without --env/--key, only these.
    #[arg(long, value_name = "PROFILE")]
    pub aws_profile: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Only this env (default: the everyday envs: keyrack.yml's `everyday:`, else every env but
    /// prod; never prod or sudo without --env).
    #[arg(long)]
    pub env: Option<String>,
    /// Only these keys.
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// How long grants live (default 9h; sudo 30m; at most 24h), capped by each key's limits.
    #[arg(long, value_parser = ttl)]
    pub duration: Option<Duration>,
    #[command(flatten)]
    pub login: LoginArgs,
}

#[derive(Debug, Args)]
pub struct RelockArgs {
    /// Only this env.
    #[arg(long)]
    pub env: Option<String>,
    /// Only these keys.
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this env.
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this env.
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct DelArgs {
    /// The key.
    #[arg(long)]
    pub key: String,
    /// The env (inferred from keyrack.yml when unambiguous).
    #[arg(long)]
    pub env: Option<String>,
    /// `@all` for a machine-wide key.
    #[arg(long)]
    pub org: Option<String>,
    /// Also remove the key from keyrack.yml (the team's file: other hosts stop being asked for it).
    #[arg(long)]
    pub from_manifest: bool,
}

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Is the daemon running, and what does it hold.
    Status,
    /// Stop the daemon (forgets every grant).
    Prune,
    /// Run the daemon in the foreground (started on demand by unlock).
    #[command(hide = true)]
    Run,
}
