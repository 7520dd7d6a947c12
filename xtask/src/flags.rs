//! The command line of the bench tasks (`bench-serve`, `hostile-serve`): switches such as
//! `--debug`, and numbers given as `--NAME N`. One reader, so that every task takes its flags
//! in any order and refuses an unknown flag, or a value that is not a number, in the same words.

use anyhow::{Context, Result, bail};

/// A task's command line, read flag by flag: each flag the task asks for is marked as read,
/// and [`finish`](Self::finish) refuses whatever is left.
#[derive(Debug)]
pub(crate) struct TaskFlags<'a> {
    task: &'a str,
    rest: &'a [String],
    read: Vec<bool>,
}

impl<'a> TaskFlags<'a> {
    /// The flags `rest` of task `task` (the name its errors begin with).
    pub(crate) fn new(task: &'a str, rest: &'a [String]) -> Self {
        TaskFlags {
            task,
            rest,
            read: vec![false; rest.len()],
        }
    }

    /// Where `name` stands on the command line.
    fn places(&self, name: &str) -> Vec<usize> {
        (0..self.rest.len())
            .filter(|&i| self.rest[i] == name)
            .collect()
    }

    /// Whether the switch `name` (a flag without a value) is given.
    pub(crate) fn switch(&mut self, name: &str) -> bool {
        let places = self.places(name);
        for &i in &places {
            self.read[i] = true;
        }
        !places.is_empty()
    }

    /// The number after `name` (its last one when it is given twice), or `default` without it.
    pub(crate) fn number(&mut self, name: &str, default: usize) -> Result<usize> {
        let mut value = default;
        for i in self.places(name) {
            value = self
                .rest
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{name} takes a number"))?;
            self.read[i] = true;
            self.read[i + 1] = true;
        }
        Ok(value)
    }

    /// Refuses the first word on the command line that no flag read.
    pub(crate) fn finish(self) -> Result<()> {
        match (0..self.rest.len()).find(|&i| !self.read[i]) {
            Some(i) => bail!("{}: unknown flag {}", self.task, self.rest[i]),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TaskFlags;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn without_flags_every_default_holds() {
        let rest = words("");
        let mut f = TaskFlags::new("bench-serve", &rest);
        assert!(!f.switch("--debug"));
        assert_eq!(f.number("--rounds", 3).unwrap(), 3);
        f.finish().unwrap();
    }

    #[test]
    fn flags_are_read_in_any_order_and_the_last_of_a_number_wins() {
        let rest = words("--rounds 2 --debug --seconds 9 --rounds 7");
        let mut f = TaskFlags::new("bench-serve", &rest);
        assert_eq!(f.number("--seconds", 5).unwrap(), 9);
        assert!(f.switch("--debug"));
        assert_eq!(f.number("--rounds", 3).unwrap(), 7);
        assert_eq!(f.number("--workers", 4).unwrap(), 4);
        f.finish().unwrap();
    }

    #[test]
    fn a_number_flag_without_a_number_is_refused() {
        for line in ["--slow", "--slow many", "--slow -1", "--slow --debug"] {
            let rest = words(line);
            let mut f = TaskFlags::new("hostile-serve", &rest);
            let err = f.number("--slow", 1000).unwrap_err().to_string();
            assert_eq!(err, "--slow takes a number", "{line}");
        }
    }

    #[test]
    fn a_word_no_flag_reads_is_refused_by_name() {
        let rest = words("--debug --bogus");
        let mut f = TaskFlags::new("hostile-serve", &rest);
        assert!(f.switch("--debug"));
        let err = f.finish().unwrap_err().to_string();
        assert_eq!(err, "hostile-serve: unknown flag --bogus");
        // A second value after a number's is no flag's.
        let rest = words("--connections 5 6");
        let mut f = TaskFlags::new("hostile-serve", &rest);
        assert_eq!(f.number("--connections", 10_000).unwrap(), 5);
        let err = f.finish().unwrap_err().to_string();
        assert_eq!(err, "hostile-serve: unknown flag 6");
    }
}
