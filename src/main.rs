//! The `hygroflow` binary: parse flags, build a validated config, run, map errors to exit codes.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use hygroflow::cli::{Cli, Command};
use hygroflow::pipeline;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("hygroflow: {first} (see hygroflow --help)");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        // Log fields can hold input text (a file name, a librdkafka message): escaped.
        .fmt_fields(hygroflow::escape::LogFields)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // A peer process that dies makes timely's network threads panic: stop with an error
    // instead of leaving the other workers waiting.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("timely communication error") {
            eprintln!("hygroflow: lost the connection to a peer process ({message}); stopping");
            std::process::exit(1);
        }
        default_hook(info);
    }));
    match run(cli) {
        Ok(Ended::Normally) => ExitCode::SUCCESS,
        // Nobody reads any more: stop quietly, with the status a shell gives a process that
        // SIGPIPE ended (128 + 13), so pipelines still see that the output was cut short.
        Ok(Ended::PipeClosed) => ExitCode::from(141),
        Err(e) => {
            eprintln!("hygroflow: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How a command ended without error.
enum Ended {
    Normally,
    /// Stdout was closed by its reader (`| head`).
    PipeClosed,
}

fn run(cli: Cli) -> anyhow::Result<Ended> {
    let done = |result: anyhow::Result<()>| result.map(|()| Ended::Normally);
    let args = match cli.command {
        Some(Command::Generate(args)) => {
            return match args.write(&mut std::io::stdout().lock()) {
                Err(e) if is_broken_pipe(&e) => Ok(Ended::PipeClosed),
                other => done(other),
            };
        }
        Some(Command::Produce(args)) => return done(hygroflow::kafka::produce::run(&args)),
        Some(Command::Topic(args)) => return done(hygroflow::kafka::admin::run(&args)),
        Some(Command::Bench(args)) => return done(hygroflow::bench::run(&args)),
        Some(Command::Run(args)) => *args,
        None => cli.run,
    };
    let config = args.config()?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&shutdown);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: stop now.
            std::process::exit(130);
        }
    })?;
    let out: Box<dyn Write + Send> = Box::new(std::io::stdout());
    let outcome = pipeline::run(config, out, shutdown)?;
    Ok(if outcome.pipe_closed {
        Ended::PipeClosed
    } else {
        Ended::Normally
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
