use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = mailstead::cli::Cli::parse();
    match mailstead::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
