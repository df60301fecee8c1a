use std::process::ExitCode;

use clap::Parser;
use registry_resolver::app;
use registry_resolver::cli::{Cli, Command};
use registry_resolver::telemetry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging(cli.log_format, &cli.log_level);
    let done = |result: Result<(), String>| result.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Command::Serve(args) => done(
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(app::serve(*args)).map_err(|e| e.to_string())),
        ),
        Command::Resolve(args) => done(
            app::resolve(args)
                .map(|resolved| {
                    for warning in &resolved.warnings {
                        eprintln!("Warning: {warning}");
                    }
                    print!("{}", resolved.output)
                })
                .map_err(|e| e.to_string()),
        ),
        Command::Crd => done(
            registry_resolver::kubernetes::crd::crd_yaml()
                .map(|yaml| print!("{yaml}"))
                .map_err(|e| e.to_string()),
        ),
        Command::Certs(args) => done(
            app::certs(args)
                .map(|paths| {
                    eprintln!(
                        "wrote {}, {}, {} and {}",
                        paths.ca_cert.display(),
                        paths.ca_key.display(),
                        paths.cert.display(),
                        paths.key.display()
                    )
                })
                .map_err(|e| e.to_string()),
        ),
        Command::Import(args) => app::import(args)
            .map(|outcome| {
                for line in &outcome.lines {
                    println!("{line}");
                }
                if outcome.failed > 0 {
                    eprintln!("{} could not be imported", outcome.failed);
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            })
            .map_err(|e| e.to_string()),
        Command::Export(args) => done(
            app::export(args)
                .map(|text| {
                    if let Some(text) = text {
                        print!("{text}");
                    }
                })
                .map_err(|e| e.to_string()),
        ),
        Command::NodeConfig(args) => {
            let check = args.check;
            app::node_config(args)
                .map(|outcome| {
                    for line in &outcome.lines {
                        println!("{line}");
                    }
                    // `--check`: 1 when something would change, as `diff` does.
                    if check && outcome.changed {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                })
                .map_err(|e| e.to_string())
        }
        Command::NodeAgent(args) => done(
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| {
                    rt.block_on(app::node_agent(args))
                        .map_err(|e| e.to_string())
                }),
        ),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("registry-resolver: {message}");
            ExitCode::FAILURE
        }
    }
}
