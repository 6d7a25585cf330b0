//! `footfall completions SHELL` and `footfall man`: shell completions and
//! manual pages, generated from the same definitions as `--help`.

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;

use crate::exit::{Failure, CANT_CREATE};

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write footfall.1 and one page per command (footfall-ingest.1, ...) into
    /// this directory instead of printing footfall.1 on stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Print the completion script for `args.shell` on stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "footfall", &mut std::io::stdout());
    Ok(())
}

/// Print the manual page, or write every page into `--dir`.
pub fn man(args: ManArgs) -> anyhow::Result<()> {
    let cmd = crate::Cli::command();
    let Some(dir) = args.dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        return Ok(out.flush()?);
    };
    let fail = |e: std::io::Error| {
        Failure::new(
            CANT_CREATE,
            format!("writing manual pages to {}: {e}", dir.display()),
        )
    };
    std::fs::create_dir_all(&dir).map_err(fail)?;
    clap_mangen::generate_to(cmd, &dir).map_err(fail)?;
    eprintln!("footfall man: wrote the manual pages to {}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_and_man_pages_cover_every_command() {
        let mut cmd = crate::Cli::command();
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert!(names.len() >= 10, "{names:?}");
        let mut bash = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "footfall", &mut bash);
        let bash = String::from_utf8(bash).unwrap();
        for n in &names {
            assert!(bash.contains(n.as_str()), "bash completion lacks {n}");
        }
        let dir = tempfile::tempdir().unwrap();
        clap_mangen::generate_to(crate::Cli::command(), dir.path()).unwrap();
        let page = std::fs::read_to_string(dir.path().join("footfall.1")).unwrap();
        assert!(page.contains(".TH footfall"), "{page}");
        for n in &names {
            assert!(
                dir.path().join(format!("footfall-{n}.1")).is_file(),
                "no page for {n}"
            );
        }
    }
}
