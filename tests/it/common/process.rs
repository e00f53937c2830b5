//! rdbkit run in the background by a test: its output in files, waits with deadlines, signals by
//! pid.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A running `rdbkit`, its stdout and stderr in `dir/out` and `dir/err`. Killed when dropped.
pub struct Running {
    child: Child,
    dir: PathBuf,
}

impl Running {
    /// Starts `rdbkit args` with its output in `dir`.
    pub fn start(args: &[&str], dir: &Path) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
            .args(args)
            .stdout(std::fs::File::create(dir.join("out")).unwrap())
            .stderr(std::fs::File::create(dir.join("err")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Running {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its output so far, stdout then stderr.
    pub fn output(&self) -> String {
        output(&self.dir)
    }

    /// Waits (within `limit`) until the output contains `what`; panics if it exits first.
    pub fn wait_for(&mut self, what: &str, limit: Duration) {
        let start = Instant::now();
        while !self.output().contains(what) {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("rdbkit exited ({st}) before {what:?}:\n{}", self.output());
            }
            assert!(
                start.elapsed() < limit,
                "no {what:?} within {limit:?}:\n{}",
                self.output()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `sig` (as `kill` takes it: `-TERM`, `-KILL`).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits for the exit, within `limit` (killed and a panic after it).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("rdbkit did not exit within {limit:?}:\n{}", self.output());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        super::kill(&mut self.child);
    }
}

/// The output of the rdbkit that ran with `dir` (stdout, then stderr).
pub fn output(dir: &Path) -> String {
    let mut s = String::new();
    for f in ["out", "err"] {
        let _ = std::fs::File::open(dir.join(f)).map(|mut f| f.read_to_string(&mut s));
    }
    s
}
