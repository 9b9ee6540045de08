//! The CLI process as a trust boundary (issue 7, items 3 and 11): no core file of a process that
//! holds secrets, a closed pipe is the reader's choice (exit quietly, never a panic or abort), a
//! failed strict `source --json` shows no value, and `exec` says why the kernel refused to start the
//! command (too large for the environment, not found, not executable).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use keyrack_testkit::{stderr, stdout, Sandbox};
use rexpect::session::spawn_command;

fn sandbox() -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s
}

/// A pipe whose reader has already gone: every write to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer.into()
}

/// Runs keyrack with its stdout on a pipe nobody reads any more.
fn into_closed_stdout(s: &Sandbox, args: &[&str]) -> Output {
    s.std_cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .output()
        .expect("run keyrack")
}

fn assert_quiet_exit(o: &Output, want: i32, what: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(want),
        "{what}: exit {:?} (101 = panic, 134 = abort, none = killed by a signal): {err}",
        o.status
    );
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
    assert!(!err.contains("Broken pipe"), "{what} complained: {err}");
}

/// MAX_ARG_STRLEN of this kernel: 32 pages.
fn max_arg_strlen() -> usize {
    let o = Command::new("getconf").arg("PAGESIZE").output().unwrap();
    32 * stdout(&o).trim().parse::<usize>().unwrap()
}

/// The hard core limit this test runs under, as `ulimit -H -c` prints it.
fn hard_core_limit() -> String {
    let o = Command::new("sh")
        .args(["-c", "ulimit -H -c"])
        .output()
        .unwrap();
    stdout(&o).trim().to_string()
}

fn my_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

// ---------------------------------------------------------------------------------------------
// a closed pipe ends the output quietly

#[test]
fn get_into_a_pipe_whose_reader_closed_exits_0_without_a_panic() {
    let s = sandbox();
    s.set("K", "test", "pipe-value");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    for args in [
        &["get", "--key", "K", "--env", "test", "--value"][..],
        &["get", "--key", "K", "--env", "test"],
        &["--json", "get", "--key", "K", "--env", "test"],
    ] {
        let o = into_closed_stdout(&s, args);
        assert_quiet_exit(&o, 0, &args.join(" "));
    }
    // a refusal keeps its own exit code: the closed pipe does not turn it into success or a crash
    let o = into_closed_stdout(&s, &["get", "--key", "NEVER", "--env", "test"]);
    assert_quiet_exit(&o, 2, "get of a key not granted");
}

#[test]
fn list_status_source_and_friends_into_a_closed_pipe_exit_0() {
    let s = sandbox();
    for i in 0..40 {
        s.set(&format!("KEY_{i:02}"), "test", &format!("value-{i}"));
    }
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    for args in [
        &["list"][..],
        &["--json", "list"],
        &["status"],
        &["--json", "status"],
        &["source", "--env", "test"],
        &["--json", "source", "--env", "test"],
        &["unlock", "--env", "test"],
        &["daemon", "status"],
        &["recipient", "list"],
        &["completions", "bash"],
    ] {
        let o = into_closed_stdout(&s, args);
        assert_quiet_exit(&o, 0, &args.join(" "));
    }
}

/// `keyrack … | head -c1`: the reader takes one byte of an output larger than the pipe buffer and
/// leaves; keyrack's next write fails and it must end with 0, quietly.
#[test]
fn a_reader_that_takes_one_byte_and_leaves_gets_exit_0() {
    let s = sandbox();
    // more than a pipe holds (64 KiB), so keyrack is still writing when the reader leaves
    let big = "b".repeat(200 * 1024); // under the 256 KiB value limit
    s.set("BIG", "test", &big);
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    for args in [
        &["get", "--key", "BIG", "--env", "test", "--value"][..],
        &["source", "--env", "test"],
        &["--json", "source", "--env", "test"],
    ] {
        let mut child = s
            .std_cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut one = [0u8; 1];
        out.read_exact(&mut one).unwrap();
        drop(out); // like `head -c1` exiting
        let o = child.wait_with_output().unwrap();
        assert_quiet_exit(&o, 0, &args.join(" "));
    }
}

#[test]
fn a_write_error_other_than_a_closed_reader_is_reported_not_swallowed() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let s = sandbox();
    s.set("K", "test", "v");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = s
        .std_cmd()
        .args(["get", "--key", "K", "--env", "test", "--value"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "a value that never arrived is not a success"
    );
    assert!(
        stderr(&o).contains("cannot write standard output"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn a_closed_stderr_is_not_a_crash() {
    let s = sandbox();
    // a refusal's tree goes to stderr
    let o = s
        .std_cmd()
        .args(["get", "--key", "NEVER", "--env", "test", "--value"])
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{:?}", o.status);
    // an exec that fails writes its error after the attempt (which resets SIGPIPE in the process)
    let o = s
        .std_cmd()
        .args(["exec", "--env", "test", "--", "keyrack-no-such-command"])
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(127),
        "not killed by SIGPIPE: {:?}",
        o.status
    );
}

// ---------------------------------------------------------------------------------------------
// strict source --json

#[test]
fn strict_source_json_that_fails_prints_no_value() {
    let s = sandbox();
    s.manifest("org: acme\nenv.test: [A, B]\n");
    s.set("A", "test", "granted-value-a");
    s.cmd().args(["unlock", "--env", "test"]).assert().code(2); // B is absent
    let (code, v) = s.json(&["source", "--env", "test"]);
    assert_eq!(code, 2);
    let text = v.to_string();
    assert!(
        !text.contains("granted-value-a"),
        "strict prints no value: {text}"
    );
    let rows = v["keys"].as_array().expect("one JSON document");
    let b = rows
        .iter()
        .find(|r| r["slug"] == "acme.test.B")
        .expect("B described");
    assert_eq!(b["status"], "absent");
    assert!(rows.iter().all(|r| r.get("value").is_none()), "{text}");
    // lenient still hands out what is granted
    let (code, v) = s.json(&["source", "--env", "test", "--lenient"]);
    assert_eq!(code, 0);
    assert!(v.to_string().contains("granted-value-a"));
}

// ---------------------------------------------------------------------------------------------
// core dumps

/// A sandbox whose commands run as another, unprivileged user (nobody) when the tests run as root,
/// so that `/proc/<pid>/` ownership shows the dumpable flag: the files of a non-dumpable process
/// (`/proc/<pid>/status`, not the directory) belong to root, a dumpable one's to its own uid.
/// Not root: run as ourselves.
struct Unprivileged {
    s: Sandbox,
    prefix: Vec<String>,
    uid: u32,
}

impl Unprivileged {
    fn new() -> Self {
        let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
        s.manifest("org: acme\nenv.test: []\n");
        let (prefix, uid) = if my_uid() == 0 {
            let st = Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(&s.root)
                .status()
                .unwrap();
            assert!(st.success());
            (
                vec![
                    "setpriv".to_string(),
                    "--reuid=65534".into(),
                    "--regid=65534".into(),
                    "--clear-groups".into(),
                    "--".into(),
                ],
                65534,
            )
        } else {
            (vec![], my_uid())
        };
        let u = Unprivileged { s, prefix, uid };
        let o = u.cmd(&["init"]).output().unwrap();
        assert!(o.status.success(), "init: {}", stderr(&o));
        u
    }

    /// `sh -c SCRIPT sh <prefix…> keyrack ARGS…`: the script ends with `exec "$@"`.
    fn via_sh(&self, script: &str, args: &[&str]) -> Command {
        let mut c = Command::new("sh");
        c.env_clear()
            .current_dir(&self.s.repo)
            .envs(self.s.vars())
            .env("TERM", "xterm")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(&self.prefix)
            .arg(self.s.bin())
            .args(args);
        c
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.via_sh("exec \"$@\"", args)
    }
}

/// Raises the soft core limit to the hard one (`ulimit -c unlimited` where the hard limit allows).
const CORES_ON: &str = "ulimit -S -c \"$(ulimit -H -c)\"";

/// (soft, hard) "Max core file size" of a running process.
fn core_limit_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core line");
    let mut f = line["Max core file size".len()..].split_whitespace();
    (f.next().unwrap().into(), f.next().unwrap().into())
}

fn status_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn keyrack_asking_for_a_secret_has_core_limit_0_and_is_not_dumpable() {
    let hard = hard_core_limit();
    if hard == "0" {
        eprintln!("skipped: the hard core limit is 0 here, nothing to lower");
        return;
    }
    let u = Unprivileged::new();
    let cmd = u.via_sh(
        &format!("echo \"pid=$$.\"; {CORES_ON} && exec \"$@\""),
        &["set", "--key", "TYPED", "--env", "test"],
    );
    let mut p = spawn_command(cmd, Some(20_000)).unwrap();
    let (_, m) = p.exp_regex(r"pid=\d+\.").unwrap();
    let pid: u32 = m
        .trim_start_matches("pid=")
        .trim_end_matches('.')
        .parse()
        .unwrap();
    // the hidden prompt: keyrack is about to receive the secret
    p.exp_string("TYPED:").unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        std::fs::canonicalize(u.s.bin()).unwrap(),
        "observing keyrack itself"
    );
    assert_eq!(status_uid(pid), u.uid);
    assert_eq!(
        core_limit_of(pid),
        ("0".to_string(), hard.clone()),
        "soft core limit 0; the hard limit is kept so exec can give it back"
    );
    let owner = std::fs::metadata(format!("/proc/{pid}/status"))
        .unwrap()
        .uid();
    assert_eq!(
        owner, 0,
        "/proc/{pid}/status of a non-dumpable process belongs to root (uid {} when dumpable)",
        u.uid
    );
    p.send_control('c').unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn exec_gives_the_command_its_core_limit_and_the_values_only_in_its_environment() {
    let hard = hard_core_limit();
    let s = sandbox();
    s.set("K", "test", "exec-secret-value");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let child_script = "echo \"soft=$(ulimit -S -c) hard=$(ulimit -H -c)\"; \
        grep SigIgn /proc/$$/status; \
        echo \"argv=$(tr '\\0' ' ' < /proc/$$/cmdline)\"; \
        echo \"env=$K\"";
    let o = Command::new("sh")
        .env_clear()
        .envs(s.vars())
        .current_dir(&s.repo)
        .arg("-c")
        .arg(format!("{CORES_ON} && exec \"$@\""))
        .arg("sh")
        .arg(s.bin())
        .args(["exec", "--env", "test", "--", "sh", "-c", child_script])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("soft={hard} hard={hard}")),
        "the command gets the core limit keyrack started with (soft and hard): {out}"
    );
    let sigign = out
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .expect("SigIgn line");
    let mask = u64::from_str_radix(sigign.trim(), 16).unwrap();
    assert_eq!(
        mask & (1 << 12),
        0,
        "SIGPIPE (13) is not left ignored for the command: {out}"
    );
    let argv = out.lines().find(|l| l.starts_with("argv=")).unwrap();
    assert!(
        !argv.contains("exec-secret-value"),
        "no value on a command line: {argv}"
    );
    assert!(
        out.contains("env=exec-secret-value"),
        "the value is in the environment: {out}"
    );
}

#[test]
fn the_command_exec_runs_is_dumpable_again() {
    let hard = hard_core_limit();
    let u = Unprivileged::new();
    let o = u
        .via_sh(
            &format!("{CORES_ON} && exec \"$@\""),
            &[
                "exec",
                "--env",
                "test",
                "--",
                "sh",
                "-c",
                "echo \"owner=$(stat -c %u /proc/$$/status) uid=$(id -u) core=$(ulimit -S -c)\"",
            ],
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!("owner={0} uid={0} core={hard}", u.uid),
        "execve made the command dumpable and it has its core limit back"
    );
}

// ---------------------------------------------------------------------------------------------
// exec: why the kernel refused

#[test]
fn exec_of_a_value_too_large_for_the_environment_names_the_key_its_size_and_the_limit() {
    let s = sandbox();
    let limit = max_arg_strlen();
    let size = limit + 64 * 1024; // 200 KiB on 4 KiB pages
    let big = "z".repeat(size);
    s.cmd()
        .args([
            "set",
            "--key",
            "BIG",
            "--env",
            "test",
            "--vault",
            "os.direct",
        ])
        .write_stdin(big.clone())
        .assert()
        .success();
    s.set("SMALL", "test", "small");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let o = s.run(&["exec", "--env", "test", "--", "true"], "");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(126), "{err}");
    assert!(err.contains("'BIG'"), "which key: {err}");
    assert!(err.contains(&format!("{size} bytes")), "its size: {err}");
    assert!(err.contains(&limit.to_string()), "the limit: {err}");
    assert!(err.contains("MAX_ARG_STRLEN"), "{err}");
    assert!(!err.contains("PATH"), "not a PATH problem: {err}");
    assert!(!err.contains("zzzz"), "never the value: {err}");
    // without it the command runs
    let o = s.run(
        &[
            "exec",
            "--env",
            "test",
            "--key",
            "SMALL",
            "--",
            "sh",
            "-c",
            "echo $SMALL",
        ],
        "",
    );
    assert_eq!(stdout(&o), "small\n", "{}", stderr(&o));
}

#[test]
fn exec_over_arg_max_in_total_names_the_limit_and_the_largest_keys() {
    let s = sandbox();
    for k in ["M1", "M2", "M3"] {
        s.cmd()
            .args(["set", "--key", k, "--env", "test", "--vault", "os.direct"])
            .write_stdin("m".repeat(100 * 1024))
            .assert()
            .success();
    }
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    // a 1 MiB stack makes ARG_MAX 256 KiB: each value fits, the three together do not
    let o = Command::new("sh")
        .env_clear()
        .envs(s.vars())
        .current_dir(&s.repo)
        .arg("-c")
        .arg("ulimit -s 1024 && exec \"$@\"")
        .arg("sh")
        .arg(s.bin())
        .args(["exec", "--env", "test", "--", "true"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(126), "{err}");
    assert!(err.contains("ARG_MAX: 262144 bytes"), "{err}");
    assert!(err.contains("M1 (102400 bytes)"), "{err}");
    assert!(!err.contains("PATH"), "{err}");
}

#[test]
fn exec_tells_not_found_from_not_executable() {
    let s = sandbox();
    let o = s.run(
        &["exec", "--env", "test", "--", "keyrack-no-such-command"],
        "",
    );
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    assert!(stderr(&o).contains("PATH"), "{}", stderr(&o));

    let script = s.repo.join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
    let o = s.run(
        &["exec", "--env", "test", "--", script.to_str().unwrap()],
        "",
    );
    assert_eq!(o.status.code(), Some(126));
    assert!(stderr(&o).contains("not executable"), "{}", stderr(&o));
    assert!(stderr(&o).contains("chmod +x"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("PATH"), "{}", stderr(&o));
}
