//! Reaping orphans. A command's background processes outlive the shell that started them when it is killed; they
//! are re-parented to the daemon (a child subreaper, or PID 1 in a container) and must be waited for, or they stay
//! zombies. The current shell is left to its owner, which waits for it itself.

use std::{sync::Arc, time::Duration};

use nix::{
    sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid},
    unistd::Pid,
};

use crate::tools::shell::Shell;

/// How often to look even without SIGCHLD.
const SWEEP: Duration = Duration::from_secs(1);

/// Makes this process the reaper of its descendants' orphans and reaps them in the background.
pub fn start(shell: Arc<Shell>) {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::debug!("cannot become a child subreaper: {e}");
    }
    tokio::spawn(async move {
        let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
        loop {
            reap(shell.pid());
            match sigchld.as_mut() {
                Some(signal) => {
                    tokio::select! {
                        _ = signal.recv() => {}
                        () = tokio::time::sleep(SWEEP) => {}
                    }
                }
                None => tokio::time::sleep(SWEEP).await,
            }
        }
    });
}

/// Waits for every exited child except `keep` (the shell, whose owner waits for it).
fn reap(keep: Option<Pid>) {
    loop {
        let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let pid = match waitid(Id::All, peek) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => match status.pid() {
                Some(pid) => pid,
                None => return,
            },
        };
        if Some(pid) == keep {
            return;
        }
        let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
    }
}
