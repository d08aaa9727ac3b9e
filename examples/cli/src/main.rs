//! The `tandem` CLI; its commands arrive with the client issue.

fn main() {
    eprintln!("tandem: no commands yet");
    std::process::exit(2);
}
