//! `keyrack-fake-aws`: runs the fake on a loopback port, prints its URL, serves until stdin
//! closes (for benchmarks and manual trials).

fn main() {
    let fake = keyrack_fake_aws::FakeAws::start();
    println!("{}", fake.url);
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
}
