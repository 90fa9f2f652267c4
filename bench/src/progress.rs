//! What the bench is doing, on stderr (stdout stays the table): status
//! lines and progress bars.

/// One status line on stderr, so stdout stays the table.
pub fn progress_line(text: &str) {
    eprintln!("tandem-bench: {text}");
}

/// A progress bar on stderr, redrawn in place.
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    drawn_permille: u64,
    started: std::time::Instant,
}

impl Progress {
    pub fn new(label: &str, total: u64) -> Progress {
        let p = Progress {
            label: label.into(),
            total: total.max(1),
            done: 0,
            drawn_permille: u64::MAX,
            started: std::time::Instant::now(),
        };
        p.draw();
        p
    }

    pub fn add(&mut self, n: u64) {
        self.done = (self.done + n).min(self.total);
        let permille = self.done * 1000 / self.total;
        if permille != self.drawn_permille {
            self.drawn_permille = permille;
            self.draw();
        }
    }

    fn draw(&self) {
        use std::io::Write;
        const WIDTH: u64 = 30;
        let filled = self.done * WIDTH / self.total;
        let bar: String = (0..WIDTH)
            .map(|i| if i < filled { '#' } else { '-' })
            .collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r  {} [{bar}] {:5.1}% {}/{} {:.0}s ",
            self.label,
            self.done as f64 * 100.0 / self.total as f64,
            self.done,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }

    pub fn finish(self) {
        eprintln!();
    }
}
