//! Fault injection for the crash tests, compiled only with the `fault-injection` feature
//! (never into the binary users run). `TOUCHPOINT_FAULT_KILL_AT=N` aborts the process at the
//! N-th step of publication (1-based), as a SIGKILL would: nothing is cleaned up.
//! `TOUCHPOINT_FAULT_TRACE=1` prints every step, so a test can count them.

/// Mark a step of publication (a no-op without the feature).
pub fn step(name: &'static str) {
    #[cfg(feature = "fault-injection")]
    armed::step(name);
    #[cfg(not(feature = "fault-injection"))]
    let _ = name;
}

#[cfg(feature = "fault-injection")]
mod armed {
    use std::sync::atomic::{AtomicUsize, Ordering};

    static STEP: AtomicUsize = AtomicUsize::new(0);

    pub fn step(name: &'static str) {
        let n = STEP.fetch_add(1, Ordering::SeqCst) + 1;
        if std::env::var_os("TOUCHPOINT_FAULT_TRACE").is_some() {
            eprintln!("touchpoint-fault-step {n} {name}");
        }
        let kill_at = std::env::var("TOUCHPOINT_FAULT_KILL_AT").ok().and_then(|v| v.parse::<usize>().ok());
        if kill_at == Some(n) {
            eprintln!("touchpoint: fault injection: killed at step {n} ({name})");
            std::process::abort();
        }
    }
}
