//! The last things the simulation did, printed when a seed fails.

use std::cell::RefCell;
use std::collections::VecDeque;

/// Lines kept.
const TRACE_LINES: usize = 80;

thread_local! {
    static TRACE: RefCell<VecDeque<String>> = const { RefCell::new(VecDeque::new()) };
}

pub fn note(line: String) {
    if verbose() {
        eprintln!("{line}");
    }
    TRACE.with(|t| {
        let mut t = t.borrow_mut();
        if t.len() == TRACE_LINES {
            t.pop_front();
        }
        t.push_back(line);
    });
}

pub fn clear() {
    TRACE.with(|t| t.borrow_mut().clear());
}

pub fn dump() -> String {
    TRACE.with(|t| t.borrow().iter().cloned().collect::<Vec<_>>().join("\n  "))
}

/// `SIM_TRACE=1` prints every line as it happens.
pub fn verbose() -> bool {
    thread_local! {
        static VERBOSE: bool = std::env::var_os("SIM_TRACE").is_some();
    }
    VERBOSE.with(|v| *v)
}
