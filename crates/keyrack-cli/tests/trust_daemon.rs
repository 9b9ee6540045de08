//! The daemon's trust boundary through the real binary: an impersonated daemon (another uid's
//! runtime dir or listener), start-up races and why a daemon cannot start, large unlocks,
//! connection/memory/time bounds, files a killed daemon leaves behind, and what a started
//! daemon inherits.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyrack_testkit::{stderr, stdout, Sandbox};

const NOBODY: &str = "65534";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_keyrack")
}

fn is_root() -> bool {
    let o = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim() == "0"
}

fn my_uid() -> String {
    let o = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn unlocked() -> Sandbox {
    let s = Sandbox::new(bin());
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("K", "test", "daemon-value");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    s
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|st| !st.split(") ").nth(1).unwrap_or("").starts_with('Z'))
}

fn signal(pid: i32, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

fn proc_status_kb(pid: i32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A shared, world-writable base directory like `/tmp` (mode 1777), reachable by another uid,
/// used as `$TMPDIR` so the fallback runtime dir `$TMPDIR/keyrack-<uid>` is as exposed as
/// `/tmp/keyrack-<uid>` without touching the real `/tmp/keyrack-<uid>`.
struct SharedTmp {
    path: PathBuf,
}

impl SharedTmp {
    fn new() -> Self {
        let path = tempfile::Builder::new()
            .prefix("krt")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o1777)).unwrap();
        SharedTmp { path }
    }

    /// A sandbox whose runtime dir falls back to `$TMPDIR/keyrack-<uid>` in this base.
    fn sandbox(&self) -> Sandbox {
        let mut s = Sandbox::new(bin());
        s.env("XDG_RUNTIME_DIR", "");
        s.env("TMPDIR", self.path.to_str().unwrap());
        s
    }
}

impl Drop for SharedTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A listener run by another uid that records every connection and every byte it receives.
struct Listener {
    child: std::process::Child,
    log: PathBuf,
}

const LISTENER: &str = r#"
import os, socket, sys, time
mode, base, sock_path, log = sys.argv[1:5]
name = os.path.basename(sock_path)
if mode == 'dir':
    d = os.path.dirname(sock_path)
    os.mkdir(d); os.chmod(d, 0o777)
    bind_at = sock_path
elif mode == 'symlink':
    target = os.path.join(base, 'theirs')
    os.mkdir(target); os.chmod(target, 0o777)
    os.symlink(target, os.path.dirname(sock_path))
    bind_at = os.path.join(target, name)
else:
    bind_at = os.path.join(base, 'theirs.sock')
open(log, 'wb').close()
s = socket.socket(socket.AF_UNIX)
s.bind(bind_at)
os.chmod(bind_at, 0o777)
s.listen(64)
s.settimeout(0.1)
open(log + '.ready', 'w').close()
end = time.time() + 60
while time.time() < end and not os.path.exists(log + '.stop'):
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    with open(log + '.conn', 'a') as f:
        f.write('connection\n')
    c.settimeout(2)
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            with open(log, 'ab') as f:
                f.write(b)
    except Exception:
        pass
    c.close()
"#;

impl Listener {
    /// `mode`: `dir` (a 0777 dir at the runtime dir's place), `symlink` (a symlink there to a
    /// dir of theirs), `socket` (only a socket, at `<base>/theirs.sock`).
    fn plant(mode: &str, base: &Path, sock: &Path) -> Listener {
        let log = base.join(format!("listener-{mode}.log"));
        let child = Command::new("setpriv")
            .args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                LISTENER,
                mode,
            ])
            .arg(base)
            .arg(sock)
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let ready = PathBuf::from(format!("{}.ready", log.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the listener did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Listener { child, log }
    }

    fn received(&self) -> Vec<u8> {
        std::fs::read(&self.log).unwrap_or_default()
    }

    fn connections(&self) -> usize {
        std::fs::read_to_string(format!("{}.conn", self.log.display()))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::write(format!("{}.stop", self.log.display()), "");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the client commands that talk to the daemon; each must refuse with `expect` in its
/// error and the fix, and send nothing.
fn assert_every_client_refuses(s: &Sandbox, expect: &[&str]) {
    let commands: [&[&str]; 6] = [
        &["unlock", "--env", "test"],
        &["get", "--key", "K", "--env", "test", "--value"],
        &["exec", "--env", "test", "--", "sh", "-c", "echo ran:$K"],
        &["status"],
        &["relock"],
        &["daemon", "prune"],
    ];
    for args in commands {
        let o = s.run(args, "");
        let (out, err) = (stdout(&o), stderr(&o));
        assert_eq!(o.status.code(), Some(1), "{args:?} must fail: {out}{err}");
        assert!(!out.contains("ran:"), "{args:?} ran the command: {out}");
        assert!(!out.contains("daemon-value") && !err.contains("daemon-value"));
        for e in expect {
            assert!(err.contains(e), "{args:?}: {e:?} missing in:\n{err}");
        }
        assert!(err.contains("fix:"), "{args:?}: no fix in:\n{err}");
    }
}

// ---------------------------------------------------------------- item 1: impersonated daemon

#[test]
fn another_users_runtime_dir_or_symlink_is_refused_and_their_listener_gets_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root to plant a listener as another uid (setpriv)");
        return;
    }
    for mode in ["dir", "symlink"] {
        let tmp = SharedTmp::new();
        let s = tmp.sandbox();
        s.manifest("org: acme\nenv.test: []\n");
        s.init();
        s.set("K", "test", "daemon-value");
        let sock = s.socket();
        assert_eq!(
            sock.parent().unwrap(),
            tmp.path.join(format!("keyrack-{}", my_uid())),
            "without XDG_RUNTIME_DIR the socket falls back to $TMPDIR/keyrack-<uid>"
        );
        let l = Listener::plant(mode, &tmp.path, &sock);
        let expect: &[&str] = if mode == "dir" {
            &["owned by uid 65534", "impersonating", "XDG_RUNTIME_DIR"]
        } else {
            &["symbolic link", "uid 65534", "XDG_RUNTIME_DIR"]
        };
        assert_every_client_refuses(&s, expect);
        assert_eq!(l.connections(), 0, "{mode}: nobody even connected");
        assert!(
            l.received().is_empty(),
            "{mode}: the listener received {:?}",
            String::from_utf8_lossy(&l.received())
        );
    }
}

#[test]
fn a_socket_served_by_another_uid_is_refused_before_a_byte_is_sent() {
    if !is_root() {
        eprintln!("skipped: needs root to plant a listener as another uid (setpriv)");
        return;
    }
    let tmp = SharedTmp::new();
    let s = tmp.sandbox();
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("K", "test", "daemon-value");
    let sock = s.socket();
    // the runtime dir is right (ours, 0700) but the socket in it is served by another uid
    std::fs::create_dir(sock.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        sock.parent().unwrap(),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let l = Listener::plant("socket", &tmp.path, &sock);
    std::fs::rename(tmp.path.join("theirs.sock"), &sock).unwrap();
    assert_every_client_refuses(&s, &["served by uid 65534", "not your keyrack daemon"]);
    assert!(l.connections() > 0, "the clients did connect");
    assert!(
        l.received().is_empty(),
        "but sent nothing: {:?}",
        String::from_utf8_lossy(&l.received())
    );
}

// ---------------------------------------------------------------- item 4: start race, why

#[test]
fn prune_then_unlock_thirty_times_always_starts_a_daemon() {
    let s = unlocked();
    let mut pids = std::collections::BTreeSet::new();
    for round in 0..30 {
        s.cmd().args(["daemon", "prune"]).assert().success();
        let o = s.run(&["unlock", "--env", "test"], "");
        assert!(
            o.status.success(),
            "round {round}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        pids.insert(s.daemon_pid().expect("a daemon runs"));
    }
    assert_eq!(pids.len(), 30, "every round started a new daemon");
    assert_eq!(s.get_value("K", "test").1, "daemon-value");
}

#[test]
fn unlocking_while_an_idle_daemon_exits_always_succeeds() {
    let mut s = Sandbox::new(bin());
    // an empty daemon exits at its next sweep (every half second): relock then unlock races it
    s.env("KEYRACK_DAEMON_IDLE_SECS", "0");
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("K", "test", "v");
    let mut pids = std::collections::BTreeSet::new();
    for round in 0..30 {
        let o = s.run(&["unlock", "--env", "test"], "");
        assert!(
            o.status.success(),
            "round {round}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let (code, value, err) = s.get_value("K", "test");
        assert_eq!((code, value.as_str()), (0, "v"), "round {round}: {err}");
        if let Some(p) = s.daemon_pid() {
            pids.insert(p);
        }
        s.cmd().arg("relock").assert().success();
        std::thread::sleep(Duration::from_millis(20 * (round % 8)));
    }
    assert!(pids.len() > 1, "daemons did exit and restart: {pids:?}");
}

#[test]
fn a_runtime_dir_owned_by_someone_else_is_named_with_its_owner() {
    if !is_root() {
        eprintln!("skipped: needs root to chown a dir to another uid");
        return;
    }
    let tmp = SharedTmp::new();
    let s = tmp.sandbox();
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("K", "test", "v");
    let dir = s.socket().parent().unwrap().to_path_buf();
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let o = s.run(&["unlock", "--env", "test"], "");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains(&format!("{} is owned by uid 65534", dir.display())),
        "{err}"
    );
    assert!(
        err.contains("fix:") && err.contains("XDG_RUNTIME_DIR"),
        "{err}"
    );
    assert!(!err.contains("exited at start"), "{err}");
}

#[test]
fn a_socket_path_over_the_kernel_limit_says_so() {
    let mut s = Sandbox::new(bin());
    let long = s.root.join("r".repeat(110));
    std::fs::create_dir_all(&long).unwrap();
    s.env("XDG_RUNTIME_DIR", long.to_str().unwrap());
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("K", "test", "v");
    let o = s.run(&["unlock", "--env", "test"], "");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Unix sockets allow at most 107"), "{err}");
    assert!(
        err.contains("fix:") && err.contains("export XDG_RUNTIME_DIR="),
        "{err}"
    );
    assert!(!err.contains("exited at start"), "{err}");
}

#[test]
fn a_file_where_the_runtime_dir_should_be_says_so() {
    let s = Sandbox::new(bin());
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("K", "test", "v");
    let dir = s.runtime.join("keyrack");
    std::fs::write(&dir, "not a dir").unwrap();
    let o = s.run(&["unlock", "--env", "test"], "");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{} is a regular file", dir.display()))
            && err.contains("not a directory"),
        "{err}"
    );
    assert!(
        err.contains(&format!("fix: rm -rf '{}'", dir.display())),
        "{err}"
    );
    assert!(!err.contains("exited at start"), "{err}");
}

#[test]
fn a_daemon_that_cannot_start_tells_its_starter_why() {
    let s = Sandbox::new(bin());
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("K", "test", "v");
    // the client's checks pass (a private dir, no socket), but the daemon cannot take its lock
    let sock = s.socket();
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        sock.parent().unwrap(),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let lock = sock.with_extension("lock");
    std::fs::create_dir(&lock).unwrap();
    let o = s.run(&["unlock", "--env", "test"], "");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the daemon could not start") && err.contains(&lock.display().to_string()),
        "the daemon's own error reaches the user: {err}"
    );
    assert!(!err.contains("exited at start"), "{err}");
}

// ---------------------------------------------------------------- item 5: large unlocks

#[test]
fn thirty_values_of_200_kib_unlock_together_and_read_back() {
    let s = Sandbox::new(bin());
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    let value = |i: usize| format!("{i:02}{}", "v".repeat(200 << 10));
    for i in 0..30 {
        s.set(&format!("K{i:02}"), "test", &value(i));
    }
    let o = s.run(&["--json", "unlock", "--env", "test"], "");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["keys"].as_array().unwrap();
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|r| r["status"] == "granted"), "{v}");
    for i in [0, 7, 15, 29] {
        let (code, got, err) = s.get_value(&format!("K{i:02}"), "test");
        assert_eq!(code, 0, "{err}");
        assert!(got == value(i), "K{i:02} reads back whole");
    }
    let (_, st) = s.json(&["status"]);
    assert_eq!(st["keys"].as_array().unwrap().len(), 30);
}

// ---------------------------------------------------------------- item 6: bounds

#[test]
fn two_hundred_idle_connections_do_not_bring_the_daemon_down() {
    let s = unlocked();
    let sock = s.socket();
    let pid = s.daemon_pid().unwrap();
    let held: Vec<UnixStream> = (0..200)
        .filter_map(|_| UnixStream::connect(&sock).ok())
        .collect();
    assert!(held.len() >= 150, "connected {}", held.len());
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(pid), "the daemon survives");
    let threads = proc_status_kb(pid, "Threads:");
    assert!(
        threads <= 64 + 4,
        "one thread per connection, without a cap: {threads} threads"
    );
    drop(held);
    assert_eq!(s.get_value("K", "test").1, "daemon-value");
    assert_eq!(s.daemon_pid(), Some(pid));
}

#[test]
fn a_hundred_connections_streaming_4_mb_keep_the_daemon_small() {
    let s = unlocked();
    let sock = s.socket();
    let pid = s.daemon_pid().unwrap();
    let writers: Vec<_> = (0..100)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let Ok(mut c) = UnixStream::connect(&sock) else {
                    return;
                };
                let _ = c.set_write_timeout(Some(Duration::from_secs(10)));
                let chunk = vec![b'x'; 64 << 10];
                for _ in 0..64 {
                    if c.write_all(&chunk).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let peak_kb = proc_status_kb(pid, "VmHWM:");
    assert!(
        peak_kb < 64 << 10,
        "the daemon's memory peaked at {} MB",
        peak_kb >> 10
    );
    assert!(alive(pid));
    assert_eq!(s.get_value("K", "test").1, "daemon-value");
}

/// A keyrack world owned by another uid (`nobody`), for limits root would ignore.
struct NobodyWorld {
    tmp: SharedTmp,
    root: PathBuf,
}

impl NobodyWorld {
    fn new() -> Option<Self> {
        let tmp = SharedTmp::new();
        let root = tmp.path.join("w");
        for d in ["home", "run", "repo/.git"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("repo/keyrack.yml"), "org: acme\nenv.test: []\n").unwrap();
        let st = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(&root)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::set_permissions(root.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let w = NobodyWorld { tmp, root };
        // the binary must be reachable by that uid (it is not in every checkout)
        w.cmd(None, &["--version"])
            .output()
            .ok()?
            .status
            .success()
            .then_some(w)
    }

    /// `keyrack args` as nobody, with at most `nproc` processes (`prlimit`) when given.
    fn cmd(&self, nproc: Option<u32>, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ]);
        if let Some(n) = nproc {
            c.args(["prlimit", &format!("--nproc={n}:{n}"), "--"]);
        }
        c.arg(bin())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.root.join("home"))
            .env("KEYRACK_HOME", self.root.join("home/.keyrack"))
            .env("XDG_RUNTIME_DIR", self.root.join("run"))
            .env("NO_COLOR", "1")
            .env("USER", "nobody")
            .env("KEYRACK_DAEMON_IDLE_SECS", "60")
            .current_dir(self.root.join("repo"));
        c
    }

    fn run(&self, nproc: Option<u32>, args: &[&str], stdin: &str) -> std::process::Output {
        let mut child = self
            .cmd(nproc, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, nproc: Option<u32>, args: &[&str], stdin: &str) -> String {
        let o = self.run(nproc, args, stdin);
        assert!(o.status.success(), "{args:?}: {}{}", stdout(&o), stderr(&o));
        stdout(&o)
    }
}

impl Drop for NobodyWorld {
    fn drop(&mut self) {
        let _ = self.cmd(None, &["daemon", "prune"]).output();
        let _ = &self.tmp;
    }
}

const FLOOD: &str = r#"
import socket, sys, time
path, n, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
conns = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    conns.append(s)
time.sleep(hold)
"#;

#[test]
fn a_process_limit_drops_connections_never_the_daemon() {
    if !is_root() {
        eprintln!("skipped: needs root to run a daemon as another uid under ulimit -u");
        return;
    }
    let Some(w) = NobodyWorld::new() else {
        eprintln!("skipped: uid {NOBODY} cannot run {}", bin());
        return;
    };
    w.ok(None, &["init"], "");
    w.ok(
        None,
        &["set", "--key", "K", "--env", "test"],
        "daemon-value",
    );
    // the daemon inherits a limit of 24 processes (threads) for its uid
    w.ok(Some(24), &["unlock", "--env", "test"], "");
    let status: serde_json::Value =
        serde_json::from_str(&w.ok(None, &["--json", "daemon", "status"], "")).unwrap();
    let pid = status["pid"].as_i64().unwrap() as i32;
    let sock = status["socket"].as_str().unwrap().to_string();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max processes") && l.contains(" 24 ")),
        "{limits}"
    );
    let flood = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            FLOOD,
            &sock,
            "200",
            "1.5",
        ])
        .output()
        .unwrap();
    assert!(flood.status.success(), "{}", stderr(&flood));
    assert!(
        alive(pid),
        "200 connections under ulimit -u 24 killed the daemon"
    );
    let value = w.ok(None, &["get", "--key", "K", "--env", "test", "--value"], "");
    assert_eq!(value, "daemon-value", "and it still serves");
}

#[test]
fn a_stopped_daemon_makes_get_fail_within_seconds_and_say_what_to_do() {
    let s = unlocked();
    let pid = s.daemon_pid().unwrap();
    signal(pid, "-STOP");
    let started = Instant::now();
    let o = s.run(&["get", "--key", "K", "--env", "test", "--value"], "");
    let took = started.elapsed();
    signal(pid, "-CONT");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        err.contains(&format!("(pid {pid})")) && err.contains("did not answer within 2 s"),
        "{err}"
    );
    assert!(err.contains(&format!("fix: kill -CONT {pid}")), "{err}");
    assert_eq!(s.get_value("K", "test").1, "daemon-value", "served again");
}

// ---------------------------------------------------------------- item 7: release ledger

mod aws_world {
    use super::*;
    use keyrack_fake_aws::FakeAws;

    pub const URL: &str = "https://d-1234567890.awsapps.com/start";

    pub fn world() -> (Sandbox, FakeAws) {
        let fake = FakeAws::start();
        let mut s = Sandbox::new(bin());
        for (k, v) in fake.env() {
            s.env(&k, &v);
        }
        let script = s.root.join("browser.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\nexec curl -s -L --max-time 20 -o /dev/null \"$1\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        s.env("BROWSER", script.to_str().unwrap());
        s.manifest("org: acme\nenv.test: []\n");
        s.init();
        let o = s.run(
            &[
                "set",
                "--key",
                "AWS_PROFILE",
                "--env",
                "test",
                "--sso-start-url",
                URL,
                "--sso-region",
                "us-east-1",
                "--account-id",
                "123456789012",
                "--role-name",
                "AdministratorAccess",
                "--profile-name",
                "acme.test",
            ],
            "",
        );
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        (s, fake)
    }
}

#[test]
fn a_killed_daemon_leaves_no_sso_token_behind() {
    let (s, _fake) = aws_world::world();
    let cache = s.home.join(".aws/sso/cache");
    let mirrors = || -> Vec<PathBuf> {
        std::fs::read_dir(&cache)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    assert!(mirrors().is_empty(), "set ends relocked");
    let o = s.run(&["unlock", "--env", "test"], "");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let files = mirrors();
    assert_eq!(files.len(), 1, "the token is mirrored: {files:?}");
    let ledger_dir = s.keyrack_home.join("daemon");
    let ledger = std::fs::read_dir(&ledger_dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".release.json"))
        .expect("the mirror is recorded");
    let text = std::fs::read_to_string(&ledger).unwrap();
    assert!(text.contains(files[0].to_str().unwrap()), "{text}");
    assert!(!text.contains("accessToken") && !text.contains("refreshToken"));
    assert_eq!(
        std::fs::metadata(&ledger).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let pid = s.daemon_pid().unwrap();
    signal(pid, "-9");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(files[0].exists(), "kill -9 released nothing");

    let o = s.run(&["status"], "");
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("removed 1 file left by a daemon that stopped"),
        "{out}"
    );
    let name = files[0].file_name().unwrap().to_str().unwrap();
    assert!(out.contains(&format!("~/.aws/sso/cache/{name}")), "{out}");
    assert!(!files[0].exists(), "the token left with the daemon");
    assert!(!ledger.exists(), "and the ledger is cleared");

    let (code, out, err) = s.get_value("AWS_PROFILE", "test");
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("locked"), "{err}");
    // a second status has nothing left to say
    assert!(!stdout(&s.run(&["status"], "")).contains("removed"));
}

// ---------------------------------------------------------------- item 11: what it inherits

#[test]
fn unlock_with_an_extra_descriptor_open_returns_promptly() {
    let s = Sandbox::new(bin());
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("K", "test", "v");
    let mut c = Command::new("sh");
    c.env_clear()
        .envs(s.vars())
        .current_dir(&s.repo)
        .arg("-c")
        .arg(format!(
            "'{}' unlock --env test 3>&1 | cat >/dev/null",
            s.bin().display()
        ));
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("`keyrack unlock 3>&1 | cat` hangs: the daemon holds the pipe");
    }
    assert!(status.unwrap().success());
}

#[test]
fn the_daemon_starts_clean_no_starter_env_and_root_as_cwd() {
    let s = Sandbox::new(bin());
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("K", "test", "v");
    s.cmd()
        .args(["unlock", "--env", "test"])
        .env("GITHUB_TOKEN", "ghp_exported_by_the_user_0123456789")
        .env("MY_DB_PASSWORD", "hunter2-exported")
        .assert()
        .success();
    let pid = s.daemon_pid().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ).replace('\0', "\n");
    assert!(
        !environ.contains("GITHUB_TOKEN") && !environ.contains("ghp_"),
        "{environ}"
    );
    assert!(!environ.contains("hunter2"), "{environ}");
    assert!(!environ.contains("PATH="), "{environ}");
    assert!(environ.contains("KEYRACK_HOME="), "{environ}");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        Path::new("/")
    );
    for fd in 0..3 {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap(),
            Path::new("/dev/null"),
            "fd {fd} of the daemon is not the starter's"
        );
    }
    assert_eq!(s.get_value("K", "test").1, "v");
}

#[test]
fn a_grant_expiring_beyond_the_ttl_cap_is_refused_by_the_daemon() {
    let s = unlocked();
    let sock = s.socket();
    let now = keyrack::grant::time::now().as_millisecond() as u64;
    let far = now + 30 * 24 * 3600 * 1000;
    let req = format!(
        "{{\"op\":\"unlock\",\"grants\":[{{\"slug\":\"acme.test.EVIL\",\"secret\":\"planted\",\"vault\":\"os.secure\",\"mech\":\"replica\",\"expiresAt\":{far}}}]}}\n"
    );
    let mut c = UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("beyond the 24 h limit"), "{answer}");
    let (_, st) = s.json(&["status"]);
    let held: Vec<&str> = st["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["slug"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["acme.test.K"], "nothing was stored");
    // within the cap is accepted
    let ok = req.replace(&far.to_string(), &(now + 3_600_000).to_string());
    let mut c = UnixStream::connect(&sock).unwrap();
    c.write_all(ok.as_bytes()).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("\"stored\""), "{answer}");
    // and unlock itself cannot ask for more
    let o = s.run(&["unlock", "--env", "test", "--duration", "30d"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("at most 24h"), "{}", stderr(&o));
}
