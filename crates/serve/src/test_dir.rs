//! A folder for one unit test's files (token files, PEM files), so each test that reads files
//! from disk makes and cleans up its folder the same way.

use std::path::PathBuf;

/// A fresh folder under the system's temporary one, named after the test and this process so
/// tests running at once, and runs at once, never share it; removed when dropped, so a test
/// that fails leaves nothing behind either.
#[derive(Debug)]
pub(crate) struct TestDir(PathBuf);

impl TestDir {
    /// Makes `roma-serve-<name>-<pid>`.
    pub(crate) fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("roma-serve-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    /// The path of `file` in the folder.
    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// Writes `text` as `file` (again, when it exists); its path.
    pub(crate) fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.path(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
