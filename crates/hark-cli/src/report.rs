//! How the CLI words an error: the whole cause chain, each cause said once.
//!
//! hark's error types (thiserror) usually put their cause into their own
//! message *and* expose it as `source()` — the message reads well where it is
//! logged alone (`{e}` in the collector's traces), and a chain walker can
//! still find the cause. anyhow's `{:#}` prints the message and then every
//! source, so such an error came out twice ("/x: No such file (os error 2):
//! No such file (os error 2)"). [`chain`] appends a cause only when the text
//! so far does not already say it. One function for every command's errors,
//! so a new error type cannot bring the doubling back.

/// Prints `error: ` and the [`chain`] on stderr: how every command ends on a failure.
pub fn eprint(error: &anyhow::Error) {
    eprintln!("error: {}", chain(error));
}

/// The error and its causes as one line, each cause's text once.
pub fn chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}: {source}")]
    struct Says {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}")]
    struct Hides {
        path: &'static str,
        source: std::io::Error,
    }

    fn missing() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn a_cause_the_message_already_says_is_not_repeated() {
        let e = anyhow::Error::new(Says { path: "/x", source: missing() });
        assert_eq!(format!("{e:#}"), "reading /x: no such file: no such file", "anyhow's chain doubles it");
        assert_eq!(chain(&e), "reading /x: no such file");
    }

    #[test]
    fn a_cause_the_message_leaves_out_is_appended_as_anyhow_would() {
        let e = anyhow::Error::new(Hides { path: "/x", source: missing() });
        assert_eq!(chain(&e), "reading /x: no such file");
        let e = e.context("loading the corpus");
        assert_eq!(chain(&e), "loading the corpus: reading /x: no such file");
        assert_eq!(chain(&e), format!("{e:#}"));
    }
}
