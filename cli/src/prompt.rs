//! Reading secrets from a person without echo, or from standard input when a script pipes them in.

use std::io::{BufRead, IsTerminal, Write};

use zeroize::Zeroizing;

/// Reads one secret line: from the terminal without echo when standard input is a terminal,
/// otherwise the next line of standard input. Never from the command line, which would put
/// the secret in shell history and the process list.
pub fn read_secret(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        let line = rpassword::prompt_password(prompt)?;
        return Ok(Zeroizing::new(line.trim().to_owned()));
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = Zeroizing::new(String::new());
    let read = std::io::stdin().lock().read_line(&mut line)?;
    eprintln!();
    if read == 0 {
        anyhow::bail!("standard input ended before the secret was given");
    }
    Ok(Zeroizing::new(line.trim().to_owned()))
}
