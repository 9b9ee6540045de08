//! The session daemon as a real process: peer checks, hostile requests, crashes, load.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;

use keyrack_testkit::{stderr, stdout, Sandbox};

fn unlocked() -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("K", "test", "daemon-value");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    s
}

fn raw(socket: &Path, bytes: &[u8], close_write: bool) -> String {
    let mut c = UnixStream::connect(socket).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let _ = c.write_all(bytes);
    if close_write {
        c.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

#[test]
fn socket_and_dir_are_private() {
    let s = unlocked();
    let sock = s.socket();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(mode(sock.parent().unwrap()), 0o700);
    assert!(
        sock.starts_with(&s.runtime),
        "socket lives under $XDG_RUNTIME_DIR/keyrack"
    );
}

#[test]
fn hostile_requests_get_errors_and_the_daemon_keeps_serving() {
    let s = unlocked();
    let sock = s.socket();
    let garbage = raw(&sock, b"\x00\x01 not json at all\n", false);
    assert!(garbage.contains("malformed request"), "{garbage}");
    let unknown = raw(&sock, b"{\"op\":\"steal_everything\"}\n", false);
    assert!(unknown.contains("malformed request"), "{unknown}");
    let half = raw(&sock, b"{\"op\":\"get\",\"slugs\":[\"acme.te", true);
    assert!(half.contains("incomplete request"), "{half}");
    let big = vec![b'x'; 5 << 20];
    let oversized = raw(&sock, &big, false);
    assert!(oversized.contains("larger than"), "{oversized}");
    assert!(!garbage.contains("daemon-value") && !oversized.contains("daemon-value"));
    // still serving
    assert_eq!(s.get_value("K", "test").1, "daemon-value");
}

#[test]
fn a_connection_from_another_uid_is_refused() {
    let uid = String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout)
        .trim()
        .to_string();
    if uid != "0" {
        eprintln!("skipped: needs root to run a client as nobody (setpriv)");
        return;
    }
    let s = unlocked();
    let sock = s.socket();
    // let nobody reach the socket file: the daemon's SO_PEERCRED check must still refuse it
    let mut p = sock.clone();
    while p.pop() {
        if p.starts_with(&s.root) || p == s.root {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        if p == s.root {
            break;
        }
    }
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = format!(
        // The daemon answers a refused peer at once, without reading its request, and closes:
        // read the answer first, so a write racing that close cannot fail the test.
        "import socket\ns=socket.socket(socket.AF_UNIX)\ns.connect({:?})\nprint(s.recv(65536).decode())\ntry:\n  s.sendall(b'{{\"op\":\"get\",\"slugs\":[\"acme.test.K\"]}}\\n')\nexcept OSError:\n  pass",
        sock.display().to_string()
    );
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        out.contains("refused: peer uid 65534"),
        "stdout: {out}\nstderr: {}",
        stderr(&o)
    );
    assert!(!out.contains("daemon-value"));
    // clients refuse a runtime dir others can reach: make it private again
    std::fs::set_permissions(
        sock.parent().unwrap(),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    assert_eq!(
        s.get_value("K", "test").1,
        "daemon-value",
        "the owner is still served"
    );
}

#[test]
fn kill_9_then_locked_with_fix_then_unlock_starts_a_new_daemon() {
    let s = unlocked();
    let pid = s.daemon_pid().expect("running");
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        s.socket().exists(),
        "a crashed daemon leaves its socket file behind"
    );
    let (code, _, err) = s.get_value("K", "test");
    assert_eq!(code, 2);
    assert!(
        err.contains("locked") && err.contains("fix: keyrack unlock"),
        "{err}"
    );
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let new_pid = s.daemon_pid().expect("a new daemon");
    assert_ne!(pid, new_pid);
    assert_eq!(s.get_value("K", "test").1, "daemon-value");
}

#[test]
fn two_hundred_concurrent_gets_all_succeed() {
    let s = unlocked();
    let children: Vec<_> = (0..200)
        .map(|_| {
            s.std_cmd()
                .args(["get", "--key", "K", "--env", "test", "--value"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ok = 0;
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "daemon-value");
        ok += 1;
    }
    assert_eq!(ok, 200);
}

#[test]
fn core_dumps_are_disabled() {
    let s = unlocked();
    let pid = s.daemon_pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert!(
        core.split_whitespace().filter(|w| *w == "0").count() >= 2,
        "{core}"
    );
}

#[test]
fn an_empty_daemon_exits_after_the_idle_window() {
    let mut s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.env("KEYRACK_DAEMON_IDLE_SECS", "1");
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("K", "test", "v");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let pid = s.daemon_pid().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1600));
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "it holds a key: it stays"
    );
    s.cmd().arg("relock").assert().success();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let gone = !Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| st.contains(") Z "));
    assert!(gone, "idle and empty: the daemon exits");
    assert!(!s.socket().exists(), "and removes its socket");
}

#[test]
fn daemon_status_and_prune() {
    let s = unlocked();
    let o = s.run(&["daemon", "status"], "");
    assert!(stdout(&o).contains("running: pid"), "{}", stdout(&o));
    assert!(stdout(&o).contains("grants: 1"));
    s.cmd().args(["daemon", "prune"]).assert().success();
    let o = s.run(&["daemon", "status"], "");
    assert!(stdout(&o).contains("not running"));
    let o = s.run(&["status"], "");
    assert!(stdout(&o).contains("fix: keyrack unlock"), "{}", stdout(&o));
}

#[test]
fn random_requests_never_crash_the_daemon() {
    let s = unlocked();
    let sock = s.socket();
    let pid = s.daemon_pid().unwrap();
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    let shapes: [&[u8]; 6] = [
        b"{\"op\":\"get\",\"slugs\":",
        b"{\"op\":\"unlock\",\"grants\":[{",
        b"{\"op\":\"relock\",\"scope\":{\"kind\":",
        b"[1,2,3]",
        b"{\"op\":",
        b"\"\\u0000\"",
    ];
    for _ in 0..300 {
        let mut req: Vec<u8> = shapes[(next() as usize) % shapes.len()].to_vec();
        for _ in 0..(next() % 64) {
            req.push((next() % 256) as u8);
        }
        if next().is_multiple_of(2) {
            req.push(b'\n');
        }
        let answer = raw(&sock, &req, true);
        assert!(
            answer.contains("\"status\""),
            "every request gets an answer: {answer:?}"
        );
        assert!(
            !answer.contains("daemon-value"),
            "never a secret in an error: {answer}"
        );
    }
    assert_eq!(s.daemon_pid(), Some(pid), "same daemon still running");
    assert_eq!(s.get_value("K", "test").1, "daemon-value");
}
