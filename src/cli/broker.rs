//! `firelane broker hash-password`: the `password_hash` of an embedded
//! broker user, from a password read on standard input (never an argument,
//! which would land in the shell's history and the process list).

use std::io::BufRead;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum BrokerAction {
    /// Read a password on stdin, print its Argon2id hash for
    /// `[[mqtt.embedded_broker.users]] password_hash`.
    HashPassword,
}

pub fn run(action: BrokerAction) -> anyhow::Result<ExitCode> {
    match action {
        BrokerAction::HashPassword => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                eprintln!("broker hash-password: no password on standard input");
                return Ok(ExitCode::from(2));
            }
            println!("{}", crate::config::broker::hash_password(password));
            Ok(ExitCode::SUCCESS)
        }
    }
}
