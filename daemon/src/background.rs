//! Background work (an import, the whole-database check) runs on threads of lower scheduling priority, so that the ports keep the processor.

/// The nice value of a background thread, the lowest: under contention the kernel gives a
/// thread at nice 19 about 1.5 % of the processor time of one at 0 (the ports' and the
/// control socket's), and all of it when they are idle.
pub(crate) const BACKGROUND_NICE: i32 = 19;

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`] for good (the threads it
/// starts inherit it; an unprivileged thread cannot raise it again, so call it only on a
/// thread of its own, never on one of tokio's). A failure is said in the journal and the
/// work goes on at normal priority.
pub(crate) fn lower_this_thread(what: &str) {
    let thread = rustix::thread::gettid();
    // On Linux the nice value is a thread's own: PRIO_PROCESS with a thread ID sets that
    // thread's alone (setpriority(2), "BUGS").
    if let Err(error) = rustix::process::setpriority_process(Some(thread), BACKGROUND_NICE) {
        log::warn!(
            event = "priority";
            "{what} runs at normal priority: its thread's priority could not be lowered ({error})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the calling thread, from /proc (field 19 of its stat line).
    fn nice_of_this_thread() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name may hold spaces: the fields after it follow the last ')'.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn a_background_thread_runs_at_nice_10_and_leaves_its_parent_alone() {
        let parent = nice_of_this_thread();
        let (own, inherited) = std::thread::spawn(|| {
            lower_this_thread("the test");
            let own = nice_of_this_thread();
            let inherited = std::thread::spawn(nice_of_this_thread).join().unwrap();
            (own, inherited)
        })
        .join()
        .unwrap();
        if parent <= BACKGROUND_NICE {
            assert_eq!(own, BACKGROUND_NICE);
        }
        assert_eq!(
            inherited, own,
            "a thread the background thread starts inherits it"
        );
        assert_eq!(
            nice_of_this_thread(),
            parent,
            "the parent keeps its priority"
        );
    }
}
