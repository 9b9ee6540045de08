// The floor for `keyrack get`: the least a process can do to read one key from the daemon —
// exec, connect to the Unix socket, send one GET line, read the answer, print it. Built static
// with no dependencies by bench/run.sh.
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

fn main() {
    let mut args = std::env::args().skip(1);
    let socket = args.next().expect("usage: floor SOCKET SLUG");
    let slug = args.next().expect("usage: floor SOCKET SLUG");
    let mut s = UnixStream::connect(socket).expect("connect");
    s.write_all(format!("{{\"op\":\"get\",\"slugs\":[\"{slug}\"]}}\n").as_bytes()).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    std::io::stdout().write_all(&out).expect("stdout");
}
