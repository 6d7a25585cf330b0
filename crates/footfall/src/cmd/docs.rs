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

    const DOCS: &str = include_str!("../../../../docs/configuration.md");

    /// The text of the `###` section whose heading names `footfall NAME`
    /// under "Commands and their flags", and the shared-flags table before them.
    fn flag_sections(name: &str) -> (String, String) {
        let all = DOCS
            .split("\n## Commands and their flags\n")
            .nth(1)
            .expect("docs/configuration.md has a section Commands and their flags");
        let all = all.split("\n## ").next().unwrap();
        let mut parts = all.split("\n### ");
        let shared = parts.next().unwrap().to_string();
        let own = parts
            .find(|p| {
                let heading = p.lines().next().unwrap_or("");
                heading.contains(&format!("`footfall {name}`"))
            })
            .unwrap_or_else(|| panic!("no ### section for `footfall {name}`"));
        (own.to_string(), shared)
    }

    /// Whether `text` names `flag` (`--dry-run`, `-X`) whole.
    fn names(text: &str, flag: &str) -> bool {
        text.match_indices(flag).any(|(i, _)| {
            let after = text[i + flag.len()..].chars().next();
            let before = text[..i].chars().next_back();
            !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
                && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    }

    /// Every flag of every command (and of `keys`' actions) appears in
    /// docs/configuration.md, in that command's section or among the
    /// shared flags.
    #[test]
    fn every_flag_is_in_the_configuration_docs() {
        let cli = crate::Cli::command();
        let mut missing = Vec::new();
        for cmd in cli.get_subcommands().filter(|c| c.get_name() != "help") {
            let (own, shared) = flag_sections(cmd.get_name());
            let nested = cmd.get_subcommands().filter(|c| c.get_name() != "help");
            for c in std::iter::once(cmd).chain(nested) {
                for arg in c.get_arguments() {
                    let flag = match (arg.get_long(), arg.get_short()) {
                        (Some(l), _) => format!("--{l}"),
                        (None, Some(s)) => format!("-{s}"),
                        (None, None) => continue,
                    };
                    if flag == "--help" || names(&own, &flag) || names(&shared, &flag) {
                        continue;
                    }
                    let action = if c.get_name() == cmd.get_name() {
                        ""
                    } else {
                        c.get_name()
                    };
                    missing.push(format!("footfall {} {action}: {flag}", cmd.get_name()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "flags missing from docs/configuration.md:\n{}",
            missing.join("\n")
        );
    }
}
