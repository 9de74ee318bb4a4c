//! The flags as clap parses them, without running anything.

use clap::{CommandFactory, Parser};
use netstrata_reactor::Driver;

use crate::{Cli, Command};

/// The subcommands that take `--driver`, with any flags they require.
const WITH_DRIVER: [&[&str]; 4] = [
    &["echo-server"],
    &["bench"],
    &[
        "tunnel",
        "--listen",
        "127.0.0.1:0",
        "--connect",
        "127.0.0.1:1",
        "--stack-side",
        "listen",
    ],
    &["demo"],
];

fn parse(command: &[&str], extra: &[&str]) -> Result<Cli, clap::Error> {
    let args = ["netstrata"].iter().chain(command).chain(extra);
    Cli::try_parse_from(args)
}

/// The `--driver` a parsed command line asked for.
fn driver(cli: &Cli) -> Option<Driver> {
    match &cli.command {
        Command::Demo(a) => a.driver.driver,
        Command::Bench { load, .. } => load.driver.driver,
        Command::EchoServer { driver, .. } | Command::Tunnel { driver, .. } => driver.driver,
        Command::FaultProxy { .. } => panic!("fault-proxy takes no --driver"),
    }
}

#[test]
fn the_definitions_are_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_loop_running_subcommand_takes_driver() {
    for command in WITH_DRIVER {
        let absent = parse(command, &[]).unwrap();
        assert_eq!(driver(&absent), None, "{command:?}");
        for (name, expected) in [
            ("epoll", Driver::Epoll),
            ("uring", Driver::Uring),
            ("io_uring", Driver::Uring),
            ("auto", Driver::Auto),
        ] {
            let cli = parse(command, &["--driver", name]).unwrap();
            assert_eq!(driver(&cli), Some(expected), "{command:?} --driver {name}");
        }
    }
}

#[test]
fn an_unknown_driver_is_refused_naming_the_flag() {
    for command in WITH_DRIVER {
        let Err(e) = parse(command, &["--driver", "kqueue"]) else {
            panic!("{command:?}: --driver kqueue accepted");
        };
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        let message = e.to_string();
        assert!(message.contains("--driver"), "{message}");
        assert!(message.contains("kqueue"), "{message}");
    }
}

#[test]
fn fault_proxy_runs_no_loop_and_takes_no_driver() {
    let e = parse(
        &["fault-proxy", "--upstream", "127.0.0.1:1"],
        &["--driver", "epoll"],
    );
    assert_eq!(
        e.err().map(|e| e.kind()),
        Some(clap::error::ErrorKind::UnknownArgument)
    );
}
