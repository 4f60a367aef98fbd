//! The `hygroflow` binary: parse flags, build a validated config, run, map errors to exit codes
//! (2 for a flag error, 1 for the environment, 141 for a closed stdout pipe).

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::error::{ContextKind, ContextValue};
use clap::Parser;
use hygroflow::cli::{Cli, Command};
use hygroflow::config::ConfigError;
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
            let mut lines = text.lines();
            let mut first = lines
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_owned();
            let invalid = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(arg)) => Some(arg.as_str()),
                _ => None,
            };
            if invalid.is_some_and(|arg| arg.starts_with("-X")) {
                // A -X value may be a secret, even one typed wrong: never echoed.
                first = "invalid value for '-X <KEY=VALUE>': expected key=value (a librdkafka property); the value is not shown".to_owned();
            } else if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                // `hygroflow topic`: clap renders the whole help.
                first = "a subcommand is missing".to_owned();
            } else if first.ends_with(':') {
                // "the following required arguments were not provided:", then one per line.
                for missing in lines.map_while(|l| l.strip_prefix("  ")) {
                    first.push(' ');
                    first.push_str(missing.trim());
                }
            }
            // What was typed is echoed escaped: no control sequence reaches the terminal.
            say(&format!(
                "{} (see hygroflow --help)",
                hygroflow::escape::escape(&first)
            ));
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        // Log fields can hold input text (a file name, a librdkafka message): escaped.
        .fmt_fields(hygroflow::escape::LogFields)
        .with_writer(std::io::stderr)
        // An unwritable stderr (`2>/dev/full`) must not stop the job: lines that cannot be
        // written are dropped, without the subscriber's own complaint (which would panic).
        .log_internal_errors(false)
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
            say(&format!(
                "lost the connection to a peer process ({message}); stopping"
            ));
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
            say(&format!("{e:#}"));
            exit_code(&e)
        }
    }
}

/// Prints `hygroflow: text` on stderr; an unwritable stderr is not a reason to panic.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "hygroflow: {text}");
}

/// 2 for a flag error (as for clap's own), 1 for everything else: the environment.
fn exit_code(e: &anyhow::Error) -> ExitCode {
    e.downcast_ref::<ConfigError>()
        .map_or(ExitCode::FAILURE, |e| ExitCode::from(e.exit_code()))
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
        Some(Command::Rules(args)) => {
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
    let bound = config.stop_bound();
    // SIGINT and SIGTERM: stop reading, report what was read, exit 0. (SIGHUP reloads the
    // rules: see pipeline/reload.rs.)
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("hygroflow-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if flag.swap(true, Ordering::SeqCst) {
                    // A second signal: stop now.
                    std::process::exit(130);
                }
                // Nothing (a blocked stdout, a stuck broker) holds the process past the bound.
                std::thread::spawn(move || {
                    std::thread::sleep(bound);
                    say(&format!(
                        "still stopping {bound:?} after the signal (stdout or a broker does not answer); exiting"
                    ));
                    std::process::exit(1);
                });
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

/// jemalloc, not glibc's malloc: memory one worker frees after another allocated it (every
/// exchanged batch) is reused, so peak RSS grows little with workers (Cargo.toml has figures).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
