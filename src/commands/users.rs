//! `secmon users add|passwd|remove|list`: the people who log in to the web
//! dashboard, in the data directory's store. Passwords are read from the
//! first line of standard input (so they appear in no process list or shell
//! history) and stored only as Argon2id hashes. A running secmon sees the
//! change within seconds; a password or role change, or removal, ends the
//! user's sessions.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Subcommand;

use crate::api::keys::Role;
use crate::cli::ManageArgs;
use crate::dashboard::users::Users;

#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Add a user; the password is read from standard input (first line).
    Add {
        name: String,
        /// admin, responder (ack, resolve, notes, decisions) or viewer (read only).
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Set a new password (read from standard input) and/or a new role.
    Passwd {
        name: String,
        #[arg(long, value_enum)]
        role: Option<Role>,
        /// Change only the role; read no password.
        #[arg(long, requires = "role")]
        keep_password: bool,
    },
    /// Remove a user; their sessions end.
    Remove { name: String },
    /// Users with their roles (never the hashes).
    List {
        #[arg(long)]
        json: bool,
    },
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (shown as typed; pipe it in to avoid that): ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let p = line.strip_suffix('\n').unwrap_or(&line);
    Ok(p.strip_suffix('\r').unwrap_or(p).to_string())
}

pub fn run(args: ManageArgs, cmd: UsersCmd) -> anyhow::Result<ExitCode> {
    let (_, mut runtime) = match super::load_runtime(args.config.config.as_deref()) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if let Some(d) = &args.data_dir {
        runtime.data_dir = d.clone();
    }
    std::fs::create_dir_all(&runtime.data_dir)?;
    let db = runtime.data_dir.join("secmon.db");
    let store = secmon_respond::Store::open(&db)
        .map_err(|e| anyhow::anyhow!("opening the store {}: {e}", db.display()))?;
    let users = Users::open(&store)?;
    let now = crate::clock::now();
    let info = match cmd {
        UsersCmd::Add { name, role } => {
            let p = read_password()?;
            let u = users.add(&name, role, &p, now)?;
            eprintln!("added {} user {:?}", u.role, u.name);
            u
        }
        UsersCmd::Passwd {
            name,
            role,
            keep_password,
        } => {
            let p = if keep_password {
                None
            } else {
                Some(read_password()?)
            };
            let u = users.passwd(&name, p.as_deref(), role, now)?;
            eprintln!("updated user {:?} ({}); their sessions end", u.name, u.role);
            u
        }
        UsersCmd::Remove { name } => {
            let u = users.remove(&name)?;
            eprintln!("removed user {:?}; their sessions end", u.name);
            u
        }
        UsersCmd::List { json } => {
            let list = users.list()?;
            if json {
                crate::outln!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                crate::outln!("{:<32} {:<10} {:<24} updated", "name", "role", "created");
                for u in &list {
                    crate::outln!(
                        "{:<32} {:<10} {:<24} {}",
                        u.name,
                        u.role.as_str(),
                        u.created.to_rfc3339(),
                        u.updated.to_rfc3339()
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    crate::outln!("{}", serde_json::to_string(&info)?);
    Ok(ExitCode::SUCCESS)
}
