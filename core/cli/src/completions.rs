//! `perch completions SHELL`: the shell's completion script for `perch`, generated from the
//! same clap definition that parses the command line, so it cannot drift from it.

use std::io::Write;

use anyhow::Result;
use clap_complete::Shell;

/// Writes the completion script for `shell` to stdout. The script is built in memory first:
/// clap_complete panics on a failed write, while a write here reports it (and on Unix a
/// reader that stops early ends the process quietly by SIGPIPE; see `output`).
pub fn print(shell: Shell, cmd: &mut clap::Command) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, cmd, "perch", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}
