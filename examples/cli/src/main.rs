//! The `tandem` binary: parses the command line and runs it (see the library).

fn main() -> std::process::ExitCode {
    tandem_cli::main_with_args(std::env::args_os())
}
