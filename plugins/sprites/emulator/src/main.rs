//! `sprites-emulator`: a local, sprites.dev-compatible API server (see the crate docs).

use clap::Parser;

fn main() -> std::process::ExitCode {
    // The sandbox helper must run before any thread exists (namespaces need a single thread),
    // so it is dispatched before the async runtime is built.
    #[cfg(target_os = "linux")]
    if std::env::args().nth(1).as_deref() == Some(sprites_emulator::sandbox::HELPER_ARG) {
        return sprites_emulator::sandbox::helper_main(std::env::args().skip(2).collect());
    }
    let args = sprites_emulator::cli::Args::parse();
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sprites-emulator: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPRITES_EMULATOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sprites-emulator: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(sprites_emulator::server::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sprites-emulator: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
