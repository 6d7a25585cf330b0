//! `footfall keys`: what the keyring holds, and its life cycle (create,
//! export to a new host, import there, advance the ratchet). Never prints a
//! secret; an export is written to a 0600 file that must not exist yet.

use std::path::PathBuf;

use chrono::{Days, NaiveDate, Utc};
use footfall_keys::{Keyring, KeysConfig};

use super::{keyring_failure, keys_config, open_keyring, open_or_create_keyring, KeyringArg};
use crate::exit::{Failure, CONFIG};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub keyring: KeyringArg,
    /// TOML config file: its [keys] table gives the keyring's directory and horizon.
    #[arg(long, short = 'c', env = "FOOTFALL_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Days a day key is kept after the newest day pseudonymised (default: [keys] horizon_days, else 30).
    #[arg(long, global = true)]
    pub horizon_days: Option<u32>,
    /// Print the status as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Show where the keyring is and which days it holds (the default).
    Status,
    /// Create the keyring if there is none (from the OS random source).
    Init {
        /// How long one visitor id lasts: day (default), week or month. A longer epoch gives exact
        /// distinct visitors over it and links more of a person's visits (docs/privacy.md).
        #[arg(long)]
        epoch: Option<footfall_keys::Epoch>,
    },
    /// Write the installation secret and the ratchet's position to FILE (mode 0600),
    /// to start another host's keyring with `footfall keys import`.
    Export {
        /// The file to write; it must not exist.
        #[arg(long, short = 'o')]
        out: PathBuf,
    },
    /// Start this host's keyring from an export (refuses to replace a keyring).
    /// Delete the export afterwards: it can derive every day from its position on.
    Import {
        /// The file `footfall keys export` wrote.
        file: PathBuf,
    },
    /// Destroy the keys of every day before DATE (default: today minus the horizon).
    Advance {
        /// The oldest day to keep (YYYY-MM-DD).
        #[arg(long)]
        to: Option<NaiveDate>,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = keys_config(args.config.as_deref())?;
    if let Some(h) = args.horizon_days {
        cfg.horizon_days = h;
    }
    cfg.validate()
        .map_err(|(key, why)| Failure::new(CONFIG, format!("{key}: {why}")))?;
    match args.action.unwrap_or(Action::Status) {
        Action::Status => status(&open_keyring(&cfg, &args.keyring)?, &cfg, args.json),
        Action::Init { epoch } => {
            if epoch.is_some() {
                cfg.epoch = epoch;
            }
            let k = open_or_create_keyring(&cfg, &args.keyring, "keys")?;
            eprintln!(
                "footfall keys: keyring in {} (fingerprint {})",
                k.dir().display(),
                k.status().fingerprint
            );
            Ok(())
        }
        Action::Export { out } => {
            let k = open_keyring(&cfg, &args.keyring)?;
            k.export(&out).map_err(keyring_failure)?;
            eprintln!(
                "footfall keys: wrote {} (mode 0600): days from {} on. Move it to the new host, run \
                 `footfall keys import {}` there, then delete every copy.",
                out.display(),
                k.held_from(),
                out.display()
            );
            Ok(())
        }
        Action::Import { file } => {
            let dir = cfg.dir_or(args.keyring.keyring.clone());
            let k = Keyring::import(&dir, &file).map_err(keyring_failure)?;
            eprintln!(
                "footfall keys: keyring in {} from {} (fingerprint {}, days from {} on). Delete {} now.",
                dir.display(),
                file.display(),
                k.status().fingerprint,
                k.held_from(),
                file.display()
            );
            Ok(())
        }
        Action::Advance { to } => advance(&open_keyring(&cfg, &args.keyring)?, &cfg, to),
    }
}

fn status(k: &Keyring, cfg: &KeysConfig, json: bool) -> anyhow::Result<()> {
    let s = k.status();
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["horizon_days"] = cfg.horizon_days.into();
        println!("{v}");
        return Ok(());
    }
    println!("keyring       {}", s.dir.display());
    println!(
        "fingerprint   {} (equal on every host that shares this installation)",
        s.fingerprint
    );
    println!(
        "epoch         {} (one visitor id per {} and person)",
        s.epoch, s.epoch
    );
    println!(
        "day keys      held from {} on; every earlier day's key is destroyed",
        s.held_from
    );
    match s.newest_day {
        Some(d) => println!(
            "newest day    {d} (ingest destroys keys more than {} days before it)",
            cfg.horizon_days
        ),
        None => println!("newest day    none yet"),
    }
    println!("horizon       {} days", cfg.horizon_days);
    for f in &s.files {
        println!("file          {}", f.display());
    }
    Ok(())
}

fn advance(k: &Keyring, cfg: &KeysConfig, to: Option<NaiveDate>) -> anyhow::Result<()> {
    let today = Utc::now().date_naive();
    let to = to.unwrap_or_else(|| today - Days::new(u64::from(cfg.horizon_days)));
    if to > today + Days::new(1) {
        return Err(Failure::new(
            CONFIG,
            format!(
                "--to {to} is after tomorrow: that would destroy the keys of days still to come"
            ),
        )
        .into());
    }
    let before = k.held_from();
    if k.advance_to(to).map_err(keyring_failure)? {
        eprintln!(
            "footfall keys: destroyed the keys of {before} to {}; day keys now held from {to} on",
            to.pred_opt().unwrap_or(to)
        );
    } else {
        eprintln!(
            "footfall keys: nothing to destroy: day keys are already held only from {before} on"
        );
    }
    Ok(())
}
