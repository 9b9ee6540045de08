//! A stand-in for the 1Password CLI (`op`): a python3 script (`fake_op.py`) installed as `op` in
//! a directory of its own, keeping its items in a JSON state file and logging every call's argv
//! and environment-variable names (never values, never stdin).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The id of the built-in vault of the stand-in's account.
pub const PRIVATE_VAULT_ID: &str = "vltprivate0000000000000000";
/// The id of a second, shared vault.
pub const TEAM_VAULT_ID: &str = "vltteam000000000000000000";

/// An installed stand-in `op`.
pub struct FakeOp {
    /// The directory holding `op` (put it first on `PATH`).
    pub bin_dir: PathBuf,
    /// The `op` script.
    pub program: PathBuf,
    /// Its state (vaults and items).
    pub state_file: PathBuf,
    /// One JSON line per call: `{"argv": [...], "env": [names...]}`.
    pub log_file: PathBuf,
}

/// The absolute path of the python3 interpreter (so the script runs whatever `PATH` keyrack has).
fn python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is installed (scripts/test.sh installs it)");
    assert!(out.status.success(), "python3 runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl FakeOp {
    /// Installs the stand-in under `dir` (signed in, vaults `Private` and `Team`, no items).
    pub fn install(dir: &Path) -> FakeOp {
        let bin_dir = dir.join("op-bin");
        std::fs::create_dir_all(&bin_dir).expect("mkdir op-bin");
        let state_file = dir.join("op-state.json");
        let log_file = dir.join("op-calls.jsonl");
        let script = include_str!("fake_op.py")
            .replace("@PYTHON@", &python())
            .replace("@STATE@", &state_file.display().to_string())
            .replace("@LOG@", &log_file.display().to_string());
        let program = bin_dir.join("op");
        std::fs::write(&program, script).expect("write op");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(&log_file, "").unwrap();
        let op = FakeOp {
            bin_dir,
            program,
            state_file,
            log_file,
        };
        op.write_state(&json!({
            "signed_in": true,
            "token": null,
            "sleep": 0,
            "default_vault": "Private",
            "vaults": [
                {"id": PRIVATE_VAULT_ID, "name": "Private"},
                {"id": TEAM_VAULT_ID, "name": "Team"},
            ],
            "items": [],
            "next_id": 0,
        }));
        op
    }

    /// A `PATH` with the stand-in first and no other `op`.
    pub fn path(&self) -> String {
        let mut dirs = vec![self.bin_dir.display().to_string()];
        dirs.extend(path_dirs_without_op());
        dirs.join(":")
    }

    /// The state.
    pub fn state(&self) -> Value {
        serde_json::from_slice(&std::fs::read(&self.state_file).unwrap()).unwrap()
    }

    /// Replaces the state.
    pub fn write_state(&self, v: &Value) {
        std::fs::write(&self.state_file, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }

    fn update(&self, f: impl FnOnce(&mut Value)) {
        let mut s = self.state();
        f(&mut s);
        self.write_state(&s);
    }

    /// Plays a signed-in (or signed-out) account.
    pub fn set_signed_in(&self, yes: bool) {
        self.update(|s| s["signed_in"] = json!(yes));
    }

    /// Requires `OP_SERVICE_ACCOUNT_TOKEN` to equal `token` (None: no token needed).
    pub fn require_token(&self, token: Option<&str>) {
        self.update(|s| s["token"] = json!(token));
    }

    /// Makes every call take `secs` seconds.
    pub fn set_sleep(&self, secs: u64) {
        self.update(|s| s["sleep"] = json!(secs));
    }

    /// Adds an item (made by hand, not by keyrack) with one concealed `field`; returns its id.
    pub fn add_item(&self, vault_id: &str, title: &str, field: &str, value: &str) -> String {
        let mut id = String::new();
        self.update(|s| {
            let n = s["next_id"].as_u64().unwrap() + 1;
            s["next_id"] = json!(n);
            id = format!("itm{n:023}");
            s["items"].as_array_mut().unwrap().push(json!({
                "id": id,
                "title": title,
                "vault_id": vault_id,
                "category": "API_CREDENTIAL",
                "tags": [],
                "fields": [{"id": field, "label": field, "type": "CONCEALED", "purpose": "", "value": value}],
            }));
        });
        id
    }

    /// Every item.
    pub fn items(&self) -> Vec<Value> {
        self.state()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The value of `field` of the item with `id`, if any.
    pub fn value(&self, id: &str, field: &str) -> Option<String> {
        self.items()
            .into_iter()
            .find(|i| i["id"] == id)
            .and_then(|i| {
                i["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["id"] == field)
                    .map(|f| f["value"].as_str().unwrap().to_string())
            })
    }

    /// Every call so far: (argv, environment-variable names).
    pub fn calls(&self) -> Vec<(Vec<String>, Vec<String>)> {
        std::fs::read_to_string(&self.log_file)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let strings = |k: &str| {
                    v[k].as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_string())
                        .collect::<Vec<_>>()
                };
                (strings("argv"), strings("env"))
            })
            .collect()
    }

    /// Forgets the calls logged so far.
    pub fn clear_calls(&self) {
        std::fs::write(&self.log_file, "").unwrap();
    }

    /// Panics if any argv of any call so far contains one of `secrets`.
    pub fn assert_no_secret_in_argv(&self, secrets: &[&str]) {
        for (argv, _) in self.calls() {
            for a in &argv {
                for s in secrets {
                    assert!(!a.contains(s), "a secret reached op's argv: {argv:?}");
                }
            }
        }
    }
}

/// The directories of this process's `PATH` that hold no `op` (so a real one cannot interfere).
pub fn path_dirs_without_op() -> Vec<String> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty() && !Path::new(d).join("op").exists())
        .map(String::from)
        .collect()
}
