//! Every process group dyno started and still owns, so that an interrupt,
//! an error exit or a panic takes them all down with dyno. Owners (a
//! managed server, an adapter) hold a [`Registration`]; dropping it (after
//! the owner stopped its group) takes the group off the list.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

type Kill = Arc<dyn Fn() + Send + Sync>;

static LIVE: LazyLock<Mutex<BTreeMap<u64, Kill>>> = LazyLock::new(Mutex::default);
static NEXT: AtomicU64 = AtomicU64::new(0);

fn live() -> MutexGuard<'static, BTreeMap<u64, Kill>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A group on the list, for as long as this lives.
#[derive(Debug)]
pub(crate) struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        live().remove(&self.0);
    }
}

/// Puts a group on the list; `kill` ends it at once.
pub(crate) fn register(kill: impl Fn() + Send + Sync + 'static) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    live().insert(id, Arc::new(kill));
    Registration(id)
}

/// Ends every group on the list at once (for an exit that runs no
/// destructors).
pub(crate) fn kill_all() {
    let kills: Vec<Kill> = live().values().cloned().collect();
    for kill in kills {
        kill();
    }
}

/// Makes a panic anywhere end every child first, then report as usual.
pub(crate) fn kill_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all();
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn registered_groups_are_killed_until_dropped() {
        static KILLED: AtomicUsize = AtomicUsize::new(0);
        let registration = register(|| {
            KILLED.fetch_add(1, Ordering::SeqCst);
        });
        kill_all();
        assert_eq!(KILLED.load(Ordering::SeqCst), 1);
        drop(registration);
        kill_all();
        assert_eq!(
            KILLED.load(Ordering::SeqCst),
            1,
            "a dropped registration is off the list"
        );
    }
}
