//! Reading the person's lines for `chat`: a line editor with history on a terminal, plain lines from a pipe. The
//! reading happens on its own thread so the async side can wait for a line and for Ctrl-C at once.

use std::{
    io::{BufRead, IsTerminal},
    sync::mpsc as std_mpsc,
    thread,
};

use tokio::sync::mpsc;

/// What the person did at the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line (without its newline).
    Text(String),
    /// End of input (Ctrl-D, or the pipe closed).
    Eof,
    /// Ctrl-C at the prompt.
    Interrupted,
    /// Reading failed.
    Failed(String),
}

/// A line reader running on its own thread.
pub struct Reader {
    ask: std_mpsc::Sender<String>,
    lines: mpsc::Receiver<Line>,
    /// Whether standard input is a terminal (then the editor shows the prompt).
    pub interactive: bool,
}

impl Reader {
    /// Starts the reading thread.
    pub fn start() -> Self {
        let interactive = std::io::stdin().is_terminal();
        let (ask, asked) = std_mpsc::channel::<String>();
        let (tx, lines) = mpsc::channel(1);
        thread::spawn(move || {
            let mut editor = if interactive {
                rustyline::DefaultEditor::new().ok()
            } else {
                None
            };
            let stdin = std::io::stdin();
            while let Ok(prompt) = asked.recv() {
                let line = match editor.as_mut() {
                    Some(ed) => match ed.readline(&prompt) {
                        Ok(l) => {
                            if !l.trim().is_empty() {
                                let _ = ed.add_history_entry(l.as_str());
                            }
                            Line::Text(l)
                        }
                        Err(rustyline::error::ReadlineError::Interrupted) => Line::Interrupted,
                        Err(rustyline::error::ReadlineError::Eof) => Line::Eof,
                        Err(e) => Line::Failed(e.to_string()),
                    },
                    None => {
                        let mut l = String::new();
                        match stdin.lock().read_line(&mut l) {
                            Ok(0) => Line::Eof,
                            Ok(_) => Line::Text(l.trim_end_matches(['\n', '\r']).to_owned()),
                            Err(e) => Line::Failed(e.to_string()),
                        }
                    }
                };
                let end = !matches!(line, Line::Text(_));
                if tx.blocking_send(line).is_err() || end {
                    break;
                }
            }
        });
        Self {
            ask,
            lines,
            interactive,
        }
    }

    /// Reads the next line, showing `prompt` on a terminal.
    pub async fn line(&mut self, prompt: &str) -> Line {
        if self.ask.send(prompt.to_owned()).is_err() {
            return Line::Eof;
        }
        self.lines.recv().await.unwrap_or(Line::Eof)
    }
}
