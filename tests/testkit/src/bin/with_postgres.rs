//! `with-postgres COMMAND [ARGS…]`: runs COMMAND with `CAREERS_TEST_DATABASE_URL` pointing
//! at one PostgreSQL cluster started for it, then stops the cluster. `make test` runs the
//! whole suite this way so that every test process shares one server. An already set
//! `CAREERS_TEST_DATABASE_URL` is passed through and no cluster is started.

use std::process::{Command, ExitCode};

use careers_testkit::postgres::PgCluster;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: with-postgres COMMAND [ARGS...]");
        return ExitCode::from(2);
    };
    let mut command = Command::new(&program);
    command.args(args);
    let preset = std::env::var("CAREERS_TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty());
    let _cluster = if preset {
        None
    } else {
        match PgCluster::start() {
            Ok(cluster) => {
                command.env("CAREERS_TEST_DATABASE_URL", cluster.admin_url());
                eprintln!("with-postgres: PostgreSQL on port {}", cluster.port);
                Some(cluster)
            }
            Err(error) => {
                eprintln!("with-postgres: {error:#}");
                return ExitCode::FAILURE;
            }
        }
    };
    match command.status() {
        Ok(status) => ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1)),
        Err(error) => {
            eprintln!("with-postgres: cannot run {program}: {error}");
            ExitCode::FAILURE
        }
    }
}
