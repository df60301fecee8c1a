//! A containerd of a test's own (Debian package `containerd`): root, state,
//! socket and `opt` under a temporary directory, the CRI plugin off,
//! stopped on drop. Optionally in a mount namespace of its own whose
//! `/etc/hosts` is a file the test writes, so names like `registry.test`
//! resolve for containerd and every container it runs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub struct Containerd {
    child: Child,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// With `hosts` as `/etc/hosts` for containerd and its containers.
    pub fn start_with_hosts(hosts: &Path) -> Self {
        Self::spawn(Some(hosts))
    }

    fn spawn(hosts: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("containerd.sock");
        let config = format!(
            "version = 2\nroot = {:?}\nstate = {:?}\n[grpc]\n  address = {:?}\n[ttrpc]\n  address = {:?}\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable = true\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = {:?}\n",
            dir.path().join("root"),
            dir.path().join("state"),
            socket,
            dir.path().join("ttrpc.sock"),
            dir.path().join("opt"),
        );
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("config");
        let mut command = match hosts {
            None => Command::new("containerd"),
            Some(hosts) => {
                // `exec` twice: the child's pid is containerd's own.
                let mut command = Command::new("unshare");
                command.args([
                    "--mount",
                    "sh",
                    "-c",
                    "mount --bind \"$0\" /etc/hosts && exec containerd \"$@\"",
                ]);
                command.arg(hosts);
                command
            }
        };
        let child = command
            .arg("--config")
            .arg(&config_path)
            .stdout(std::fs::File::create(dir.path().join("log")).expect("log"))
            .stderr(std::fs::File::create(dir.path().join("err")).expect("log"))
            .spawn()
            .expect("containerd is installed (the test command installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                std::fs::read_to_string(dir.path().join("err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, socket, dir }
    }

    /// `ctr --address <socket> args…`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("ctr is installed with containerd")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers first (their shims outlive containerd by design), then
        // the shims that are left, then containerd.
        let tasks = self.ctr(&["tasks", "ls", "--quiet"]);
        for id in String::from_utf8_lossy(&tasks.stdout).split_whitespace() {
            let _ = self.ctr(&["tasks", "kill", "--signal", "SIGKILL", id]);
            let _ = self.ctr(&["tasks", "delete", "--force", id]);
            let _ = self.ctr(&["containers", "delete", id]);
        }
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(format!(
                "containerd-shim.*-address {}",
                self.socket.display()
            ))
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
