//! One module per borg subcommand; [`dispatch`] runs the parsed command.

pub mod break_lock;
pub mod check;
pub mod config;
pub mod create;
pub mod delete;
pub mod delete_archives;
pub mod diff;
pub mod extract;
pub mod info;
pub mod init;
pub mod key;
pub mod list;
pub mod recreate;
pub mod serve;
pub mod with_lock;

use clap::Subcommand;

use super::common::Ctx;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Initialize an empty repository
    Init(init::InitArgs),
    /// Create new archive
    Create(Box<create::CreateArgs>),
    /// Show archive details such as disk space used
    Info(info::InfoArgs),
    /// Extract archive contents
    Extract(extract::ExtractArgs),
    /// List archive or repository contents
    List(list::ListArgs),
    /// Check repository consistency
    Check(check::CheckArgs),
    /// Manage a keyfile or repokey of a repository
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Break the repository lock (e.g. in case it was left by a dead borg.
    #[command(name = "break-lock")]
    BreakLock(break_lock::BreakLockArgs),
    /// run a user specified command with the repository lock held
    #[command(name = "with-lock")]
    WithLock(with_lock::WithLockArgs),
    /// get, set, and delete values in a repository or cache config file
    Config(config::ConfigArgs),
    /// Delete an existing repository or archives
    Delete(delete::DeleteArgs),
    /// Start in server mode. This command is usually not used manually.
    Serve(serve::ServeArgs),
    /// Display the borg client version / borg server version
    Version(VersionArgs),
    /// find differences in archive contents
    Diff(Box<diff::DiffArgs>),
    /// Re-create archives
    Recreate(Box<recreate::RecreateArgs>),
}

#[derive(clap::Args, Debug)]
pub struct VersionArgs {
    /// repository (used to determine the server version)
    #[arg(value_name = "REPOSITORY")]
    pub location: Option<String>,
}

pub fn dispatch(cmd: Command, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        Command::Init(a) => init::run(&a, ctx),
        Command::Create(a) => {
            if a.list {
                crate::log::force_info("borg.output.list");
            }
            if a.stats || a.quick_stats {
                crate::log::force_info("borg.output.stats");
            }
            create::run(&a, ctx)
        }
        Command::Info(a) => info::run(&a, ctx),
        Command::Extract(a) => {
            if a.list {
                crate::log::force_info("borg.output.list");
            }
            extract::run(&a, ctx)
        }
        Command::Key(k) => key::run(k, ctx),
        Command::List(a) => list::run(&a, ctx),
        Command::Check(a) => check::run(&a, ctx),
        Command::Serve(a) => serve::run(&a, ctx),
        Command::BreakLock(a) => break_lock::run(&a, ctx),
        Command::WithLock(a) => with_lock::run(&a, ctx),
        Command::Config(a) => config::run(&a, ctx),
        Command::Delete(a) => delete::run(&a, ctx),
        Command::Diff(a) => diff::run(&a, ctx),
        Command::Recreate(a) => {
            if a.list {
                crate::log::force_info("borg.output.list");
            }
            recreate::run(&a, ctx)
        }
        Command::Version(a) => {
            let client = crate::BORG_COMPAT_VERSION;
            let server = match &a.location {
                Some(l) => {
                    let loc =
                        super::common::location(Some(l), super::common::Want::Repo, "REPOSITORY")?;
                    let repo = ctx.repository(&loc, false)?;
                    let (a, b, c) = repo.server_version();
                    format!("{a}.{b}.{c}")
                }
                None => client.to_string(),
            };
            crate::outln!("{client} / {server}");
            Ok(())
        }
    }
}
