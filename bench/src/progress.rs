//! What the bench is doing, on stderr (stdout stays the table): status
//! lines and progress bars.

use indicatif::{ProgressBar, ProgressStyle};

/// One status line on stderr, so stdout stays the table.
pub fn progress_line(text: &str) {
    eprintln!("tandem-bench: {text}");
}

/// A progress bar of `total` steps on stderr, redrawn in place at most 20
/// times a second, and only when stderr is a terminal (a log or a test
/// gets the status lines alone). `inc` it; `finish` it.
pub fn bar(label: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "  {msg:10} [{bar:30}] {percent:>3}% {human_pos}/{human_len} {elapsed}",
        )
        .expect("a valid template")
        .progress_chars("#>-"),
    );
    bar.set_message(label.to_owned());
    bar
}
