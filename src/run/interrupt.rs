//! Interrupts: the first Ctrl-C (or SIGTERM) asks the run to stop sending,
//! stop what it started and write what it measured; a second one ends dyno
//! at once, taking every child process group with it.

use tokio::sync::watch;

use crate::provider::children;

/// Exit status after a second interrupt (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: i32 = 130;

/// Whether the run was asked to stop, and why.
#[derive(Debug, Clone)]
pub struct Interrupt {
    rx: watch::Receiver<Option<String>>,
}

impl Default for Interrupt {
    fn default() -> Interrupt {
        Interrupt::never()
    }
}

impl Interrupt {
    /// An interrupt that never comes (tests, library callers).
    pub fn never() -> Interrupt {
        let (tx, rx) = watch::channel(None);
        // The sender is gone: the value stays `None` for good.
        drop(tx);
        Interrupt { rx }
    }

    #[cfg(test)]
    /// A manual interrupt and its trigger (tests).
    pub(crate) fn manual() -> (watch::Sender<Option<String>>, Interrupt) {
        let (tx, rx) = watch::channel(None);
        (tx, Interrupt { rx })
    }

    /// Listens for Ctrl-C and SIGTERM on the current runtime.
    pub(crate) fn listen() -> Interrupt {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let Some(first) = next_signal().await else {
                return;
            };
            let _ = tx.send(Some(format!("interrupted by {first}")));
            if next_signal().await.is_some() {
                children::kill_all();
                eprintln!("\ninterrupted again: stopped every server and adapter, nothing written");
                std::process::exit(EXIT_INTERRUPTED);
            }
        });
        Interrupt { rx }
    }

    /// Why the run was interrupted, if it was.
    pub fn reason(&self) -> Option<String> {
        self.rx.borrow().clone()
    }

    /// Waits until the run is interrupted (forever if it never is).
    pub async fn wait(&mut self) -> String {
        loop {
            if let Some(reason) = self.rx.borrow_and_update().clone() {
                return reason;
            }
            if self.rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The next Ctrl-C or SIGTERM, by name; `None` if they cannot be listened to.
async fn next_signal() -> Option<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok()?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.ok().map(|()| "SIGINT (Ctrl-C)"),
            _ = term.recv() => Some("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.ok().map(|()| "Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_interrupt_wakes_the_waiter() {
        let (tx, mut interrupt) = Interrupt::manual();
        assert_eq!(interrupt.reason(), None);
        tx.send(Some("stop".into())).unwrap();
        assert_eq!(interrupt.wait().await, "stop");
        assert_eq!(interrupt.reason().as_deref(), Some("stop"));
    }

    #[tokio::test]
    async fn never_does_not_wake() {
        let mut interrupt = Interrupt::never();
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), interrupt.wait()).await;
        assert!(waited.is_err());
    }
}
