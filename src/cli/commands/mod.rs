//! One module per borg subcommand; [`dispatch`] runs the parsed command.

pub mod benchmark;
pub mod break_lock;
pub mod check;
pub mod compact;
pub mod config;
pub mod create;
pub mod delete;
pub mod delete_archives;
pub mod diff;
pub mod export_tar;
pub mod extract;
pub mod import_tar;
pub mod info;
pub mod init;
pub mod key;
pub mod list;
pub mod prune;
pub mod recreate;
pub mod rename;
pub mod serve;
pub mod upgrade;
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
    /// Prune repository archives according to specified rules
    Prune(Box<prune::PruneArgs>),
    /// Compact segment files / free space in repo
    Compact(compact::CompactArgs),
    /// Rename an existing archive
    Rename(rename::RenameArgs),
    /// upgrade a repository from a previous version
    Upgrade(upgrade::UpgradeArgs),
    /// benchmark command
    #[command(subcommand)]
    Benchmark(benchmark::BenchmarkCommand),
    /// Start in server mode. This command is usually not used manually.
    Serve(serve::ServeArgs),
    /// Display the borg client version / borg server version
    Version(VersionArgs),
    /// Export archive contents as a tarball
    #[command(name = "export-tar")]
    ExportTar(export_tar::ExportTarArgs),
    /// Create a backup archive from a tarball
    #[command(name = "import-tar")]
    ImportTar(import_tar::ImportTarArgs),
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
    if matches!(
        cmd,
        Command::Extract(_) | Command::Check(_) | Command::ExportTar(_) | Command::Diff(_)
    ) {
        crate::cli::tune_allocator(crate::cli::HeapProfile::Reader);
    }
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
        Command::Delete(a) => {
            if a.list {
                crate::log::force_info("borg.output.list");
            }
            if a.stats {
                crate::log::force_info("borg.output.stats");
            }
            delete::run(&a, ctx)
        }
        Command::Prune(a) => {
            if a.list {
                crate::log::force_info("borg.output.list");
            }
            if a.stats {
                crate::log::force_info("borg.output.stats");
            }
            prune::run(&a, ctx)
        }
        Command::Compact(a) => compact::run(&a, ctx),
        Command::Rename(a) => rename::run(&a, ctx),
        Command::Upgrade(a) => upgrade::run(&a, ctx),
        Command::Benchmark(b) => benchmark::run(&b, ctx),
        Command::ExportTar(a) => export_tar::run(&a, ctx),
        Command::ImportTar(a) => import_tar::run(&a, ctx),
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
