//! Test support for keyrack's integration tests: a throwaway world (HOME, KEYRACK_HOME,
//! XDG_RUNTIME_DIR, a repository) and a runner for the real `keyrack` binary in it.
//!
//! Every sandbox has its own runtime dir, so each gets its own daemon; dropping the sandbox
//! stops that daemon. [`Scripted`] fakes the person at the keyboard for library-level tests.

use std::path::{Path, PathBuf};
use std::process::Output;

pub use assert_cmd;

pub mod fake_op;
pub mod person;
pub mod secret_service;
pub use person::Scripted;

/// A throwaway world for one test.
pub struct Sandbox {
    bin: PathBuf,
    _dir: tempfile::TempDir,
    /// The sandbox root.
    pub root: PathBuf,
    /// `$HOME`.
    pub home: PathBuf,
    /// `$KEYRACK_HOME`.
    pub keyrack_home: PathBuf,
    /// `$XDG_RUNTIME_DIR`.
    pub runtime: PathBuf,
    /// A repository (has `.git/`), the working directory of commands.
    pub repo: PathBuf,
    extra_env: Vec<(String, String)>,
}

impl Sandbox {
    /// A new sandbox running `bin` (pass `env!("CARGO_BIN_EXE_keyrack")`).
    pub fn new(bin: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kr")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        let home = root.join("home");
        let runtime = root.join("run");
        let repo = root.join("repo");
        for d in [&home, &runtime, &repo.join(".git")] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        Sandbox {
            bin: PathBuf::from(bin),
            _dir: dir,
            keyrack_home: home.join(".keyrack"),
            root,
            home,
            runtime,
            repo,
            extra_env: Vec::new(),
        }
    }

    /// The keyrack binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Adds an environment variable to every later command.
    pub fn env(&mut self, k: &str, v: &str) -> &mut Self {
        self.extra_env.push((k.into(), v.into()));
        self
    }

    /// The environment commands run with (nothing inherited but PATH).
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut v = vec![
            (
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_default(),
            ),
            ("HOME".into(), self.home.display().to_string()),
            (
                "KEYRACK_HOME".into(),
                self.keyrack_home.display().to_string(),
            ),
            ("XDG_RUNTIME_DIR".into(), self.runtime.display().to_string()),
            ("NO_COLOR".into(), "1".into()),
            ("USER".into(), "tester".into()),
            ("KEYRACK_DAEMON_IDLE_SECS".into(), "60".into()),
        ];
        v.extend(self.extra_env.iter().cloned());
        v
    }

    /// A `keyrack` command in the repo with the sandbox environment.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new(&self.bin);
        c.env_clear().current_dir(&self.repo).envs(self.vars());
        c
    }

    /// The same as a std command (for spawning, killing, piping).
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(&self.bin);
        c.env_clear().current_dir(&self.repo).envs(self.vars());
        c
    }

    /// Runs keyrack with `args` and `stdin`, returning the output.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        self.cmd()
            .args(args)
            .write_stdin(stdin.as_bytes().to_vec())
            .output()
            .expect("run keyrack")
    }

    /// Writes `keyrack.yml` in the repo.
    pub fn manifest(&self, text: &str) {
        std::fs::write(self.repo.join("keyrack.yml"), text).expect("write manifest");
    }

    /// Reads `keyrack.yml`.
    pub fn read_manifest(&self) -> String {
        std::fs::read_to_string(self.repo.join("keyrack.yml")).expect("read manifest")
    }

    /// `keyrack init` (generated identity), asserting success.
    pub fn init(&self) {
        self.cmd().arg("init").assert().success();
    }

    /// `keyrack set` via stdin, asserting success.
    pub fn set(&self, key: &str, env: &str, value: &str) {
        self.cmd()
            .args(["set", "--key", key, "--env", env])
            .write_stdin(value.as_bytes().to_vec())
            .assert()
            .success();
    }

    /// `keyrack get --value`, returning (exit code, stdout, stderr).
    pub fn get_value(&self, key: &str, env: &str) -> (i32, String, String) {
        let o = self.run(&["get", "--key", key, "--env", env, "--value"], "");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Runs with `--json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let o = self.run(&full, "");
        let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of {args:?} is not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (o.status.code().unwrap_or(-1), v)
    }

    /// The daemon socket path, as the binary reports it.
    pub fn socket(&self) -> PathBuf {
        let (_, v) = self.json(&["daemon", "status"]);
        PathBuf::from(v["socket"].as_str().expect("socket path"))
    }

    /// The daemon's pid, if running.
    pub fn daemon_pid(&self) -> Option<i32> {
        let (_, v) = self.json(&["daemon", "status"]);
        v["pid"].as_i64().map(|p| p as i32)
    }

    /// The generated identity file.
    pub fn identity(&self) -> PathBuf {
        self.keyrack_home.join("identity.txt")
    }

    /// All `.age` files of the os.secure vault (default owner).
    pub fn secure_files(&self) -> Vec<PathBuf> {
        let dir = self.keyrack_home.join("vault/os.secure/default");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.std_cmd().args(["daemon", "prune"]).output();
    }
}

/// Generates an OpenSSH key pair at `path` (`kind`: ed25519 or rsa; empty passphrase for none).
pub fn ssh_keygen(path: &Path, kind: &str, passphrase: &str) {
    let mut c = std::process::Command::new("ssh-keygen");
    c.args(["-q", "-t", kind, "-N", passphrase, "-C", "keyrack-test"]);
    if kind == "rsa" {
        c.args(["-b", "2048"]);
    }
    let st = c
        .arg("-f")
        .arg(path)
        .status()
        .expect("ssh-keygen is installed");
    assert!(st.success(), "ssh-keygen failed for {}", path.display());
}

/// stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
