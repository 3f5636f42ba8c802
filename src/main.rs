//! The `touchpoint` binary: logging setup, then the library; errors become exit codes.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use touchpoint::cli::{Cli, LogFormat};
use touchpoint::ExitStatus;

fn init_logging(cli: &Cli) {
    let default = if cli.quiet {
        "warn"
    } else {
        match cli.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(ansi).init(),
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3): milliseconds before freed memory
/// goes back to the OS.
const MI_OPTION_PURGE_DELAY: i32 = 15;

fn main() -> ExitCode {
    // 2 MiB pages cut the page faults of the big columns (a fifth of the CPU time at 10M
    // events). Freed pages go back to the OS after 10 ms (mimalloc v2's default; v3's is
    // 1 s, longer than a phase): keeping them (-1, tried) or v3's 1 s saved no measurable
    // time and raised the peak by the freed columns the next phase could not reuse (50M
    // events: 3.5 GB and 2.9-3.0 GB against 2.5-2.6 GB; 10M: 1.06 against 0.87 GB).
    // SAFETY: plain integer options, set before any thread starts.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10);
        libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1);
    }
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: their text is the output.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            let message = e.kind().to_string();
            print_error_line("usage", ExitStatus::Usage, &message);
            return ExitCode::from(ExitStatus::Usage.code());
        }
    };
    init_logging(&cli);
    match run(&cli) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Library errors carry their documented status; anything else is a bug.
            let (kind, status) = match e.downcast_ref::<touchpoint::Error>() {
                Some(t) => (t.kind(), t.exit_status()),
                None => ("internal_error", ExitStatus::Software),
            };
            let message = format!("{e:#}");
            tracing::error!("{message}");
            print_error_line(kind, status, &message);
            ExitCode::from(status.code())
        }
    }
}

/// The command's result as JSON, the edge where library errors become `anyhow` errors.
fn run(cli: &Cli) -> anyhow::Result<serde_json::Value> {
    let summary = touchpoint::cli::run(cli)?;
    serde_json::to_value(&summary).context("rendering the summary")
}

/// The last stdout line of a failed run: one JSON object.
fn print_error_line(kind: &str, status: ExitStatus, message: &str) {
    println!(
        "{}",
        serde_json::json!({"status": "error", "kind": kind, "exit_code": status.code(), "message": message})
    );
}
