//! A real etcd for a test: Debian's `etcd` on 127.0.0.1, ports the OS picked, a data folder
//! of its own; stopped (and its folder removed) when dropped. `cargo xtask setup` installs
//! it; without it the tests that need it say so loudly and pass nothing off as run.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Etcd {
    child: Option<Child>,
    pub data: PathBuf,
    pub client_port: u16,
    peer_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The etcd program, or `None` (with a loud message) when it is not installed.
pub fn program() -> Option<PathBuf> {
    let p = std::env::var_os("ROMA_TEST_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("ROMA_REQUIRE_ETCD").is_some() {
        panic!(
            "ROMA_REQUIRE_ETCD is set but {} does not exist",
            p.display()
        );
    }
    eprintln!(
        "\n########\n# SKIPPED: no etcd at {} (cargo xtask setup installs Debian's etcd-server;\n# ROMA_TEST_ETCD names another). The code store's etcd tests did not run.\n########\n",
        p.display()
    );
    None
}

impl Etcd {
    /// Starts etcd and waits until it answers.
    pub fn start(tag: &str) -> Option<Etcd> {
        let data = std::env::temp_dir().join(format!(
            "roma-etcd-{}-{tag}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&data);
        let mut e = Etcd {
            child: None,
            data,
            client_port: free_port(),
            peer_port: free_port(),
        };
        e.resume()?;
        Some(e)
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Starts it again on the same ports and data (after [`stop`](Self::stop)).
    pub fn resume(&mut self) -> Option<()> {
        let program = program()?;
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(program)
            .arg("--name=roma-test")
            .arg(format!("--data-dir={}", self.data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=roma-test={peer}"))
            .arg("--log-level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
        // Ready once its client port takes a connection and a request through the store
        // answers; the caller awaits the latter, this only waits for the port.
        let until = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.client_port)).is_err() {
            assert!(Instant::now() < until, "etcd did not open its port in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(())
    }

    /// Kills etcd (SIGKILL: as abrupt as a crash or a partition).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
