//! `borg config`: get, set, delete and list repository config values.

use clap::Args;

use crate::cli::common::{location, Ctx, Want};
use crate::cli::exit::{CommandError, GenericError};
use crate::repo::local::config::{parse_file_size, MAX_SEGMENT_SIZE_LIMIT};

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// get and set values from the repo cache
    #[arg(short = 'c', long = "cache")]
    pub cache: bool,
    /// delete the key from the config file
    #[arg(short = 'd', long = "delete", conflicts_with = "list")]
    pub delete: bool,
    /// list the configuration of the repo
    #[arg(short = 'l', long = "list")]
    pub list: bool,
    /// repository to configure
    #[arg(value_name = "REPOSITORY")]
    pub location: Option<String>,
    /// name of config key
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// new value for key
    #[arg(value_name = "VALUE")]
    pub value: Option<String>,
}

fn validate(section: &str, name: &str, value: Option<&str>) -> anyhow::Result<()> {
    let invalid = |m: &str| -> anyhow::Error { GenericError(m.into()).into() };
    if section != "repository" {
        return Err(invalid("Invalid section"));
    }
    match name {
        "segments_per_dir" | "last_segment_checked" => {
            if let Some(v) = value {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| invalid("Invalid value"))?;
            }
        }
        "max_segment_size" | "additional_free_space" | "storage_quota" => {
            if let Some(v) = value {
                let n = parse_file_size(v).ok_or_else(|| invalid("Invalid value"))?;
                match name {
                    "storage_quota" if n != 0 && n < 10_000_000 => {
                        return Err(invalid("Invalid value: storage_quota < 10M"))
                    }
                    "additional_free_space" if n != 0 && n < 10_000_000 => {
                        return Err(invalid("Invalid value: additional_free_space < 10M"))
                    }
                    "max_segment_size" if n >= MAX_SEGMENT_SIZE_LIMIT => {
                        return Err(invalid(&format!(
                            "Invalid value: max_segment_size >= {MAX_SEGMENT_SIZE_LIMIT}"
                        )))
                    }
                    _ => {}
                }
            }
        }
        "append_only" => {
            if let Some(v) = value {
                if v != "0" && v != "1" {
                    return Err(invalid("Invalid value"));
                }
            }
        }
        "id" => {
            if let Some(v) = value {
                if hex::decode(v.trim()).map(|b| b.len()) != Ok(32) {
                    return Err(invalid("Invalid value"));
                }
            }
        }
        _ => return Err(invalid("Invalid name")),
    }
    Ok(())
}

pub fn run(a: &ConfigArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Repo, "REPOSITORY")?;
    if !loc.is_local() {
        return Err(crate::cli::common::UsageError(format!(
            "argument REPOSITORY: \"{}\": Repository must be local",
            a.location.as_deref().unwrap_or("")
        ))
        .into());
    }
    if a.cache {
        return Err(GenericError(
            "rborg keeps its own cache format; `config --cache` is not supported".into(),
        )
        .into());
    }
    let repo = ctx.repository(&loc, true)?;
    let local = repo.as_local().expect("local repository");
    let mut cfg = local.config();
    if a.list {
        crate::outln!("[repository]");
        for key in [
            "version",
            "segments_per_dir",
            "max_segment_size",
            "storage_quota",
            "additional_free_space",
            "append_only",
            "id",
        ] {
            let v = cfg
                .ini
                .get("repository", key)
                .map(|s| s.to_string())
                .unwrap_or_else(|| match key {
                    "version" => "1".into(),
                    "segments_per_dir" => "1000".into(),
                    "max_segment_size" => MAX_SEGMENT_SIZE_LIMIT.to_string(),
                    "additional_free_space" => "0".into(),
                    "storage_quota" => local.storage_quota().to_string(),
                    "append_only" => (local.is_append_only() as u8).to_string(),
                    _ => String::new(),
                });
            crate::outln!("{key} = {v}");
        }
        if let Some(v) = cfg.ini.get("repository", "last_segment_checked") {
            crate::outln!("last_segment_checked = {v}");
        }
        return Ok(());
    }
    let name = a
        .name
        .as_deref()
        .ok_or_else(|| CommandError("No config key name was provided.".into()))?;
    let (section, key) = match name.split_once('.') {
        Some((s, k)) if !k.contains('.') => (s.to_string(), k.to_string()),
        _ => ("repository".to_string(), name.to_string()),
    };
    if a.delete {
        validate(&section, &key, None)?;
        cfg.ini.remove(&section, &key);
        local.save_config(cfg)?;
    } else if let Some(v) = &a.value {
        validate(&section, &key, Some(v))?;
        cfg.ini.set(&section, &key, v.clone());
        local.save_config(cfg)?;
    } else {
        match cfg.ini.get(&section, &key) {
            Some(v) => crate::outln!("{v}"),
            None => {
                return Err(
                    GenericError(format!("No option '{key}' in section: '{section}'")).into(),
                )
            }
        }
    }
    Ok(())
}
