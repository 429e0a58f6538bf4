use clap::Parser;

fn main() -> std::process::ExitCode {
    dyno::run(dyno::Cli::parse())
}
