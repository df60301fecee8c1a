//! Node trust against the real consumers of the files: a real containerd
//! (private root, state and socket in a temporary directory) pulling with
//! `ctr images pull --hosts-dir`, and skopeo reading `registries.conf.d`
//! and `certs.d`, from the real Distribution registry over plain HTTP and
//! over HTTPS with a private CA. Each pull fails before `node-config`
//! writes the files and succeeds after, with no `--plain-http` or
//! `--skip-verify`.
//!
//! The registries listen on 127.0.0.1. Images are named `registry.test:<port>`
//! (a reserved name), mapped to 127.0.0.1 by a private `/etc/hosts` that
//! only the pulling processes see (`unshare --mount`): containerd treats
//! `localhost` and loopback addresses as plain HTTP on its own, which would
//! hide what the files do.

mod common;
mod distribution;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use distribution::{Distribution, Mode, PASSWORD, USER};
use reqwest::Method;
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_registry-resolver");

/// A containerd of our own, stopped on drop.
struct Containerd {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("containerd.sock");
        let config = format!(
            "version = 2\nroot = {:?}\nstate = {:?}\n[grpc]\n  address = {:?}\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable = true\n",
            dir.path().join("root"),
            dir.path().join("state"),
            socket
        );
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("config");
        let child = Command::new("containerd")
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
        Self {
            child,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `program args` in a private mount namespace where `registry.test`
/// is 127.0.0.1 and each (source, target) directory is bind-mounted.
fn isolated(hosts: &Path, mounts: &[(&Path, &str)], program: &str, args: &[String]) -> Output {
    let mut script = format!("set -e; mount --bind {} /etc/hosts; ", quote(hosts));
    for (source, target) in mounts {
        script.push_str(&format!(
            "mount --bind {} {}; ",
            quote(source),
            quote(Path::new(target))
        ));
    }
    script.push_str(&format!(
        "exec {program} {}",
        args.iter()
            .map(|a| quote(Path::new(a)))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .output()
        .expect("unshare")
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn node_config(data: &Path, root: &Path, extra: &[&str]) -> Output {
    Command::new(BINARY)
        .args([
            "node-config",
            "--runtime",
            "containerd,crio,docker",
            "--data-dir",
        ])
        .arg(data)
        .arg("--root")
        .arg(root)
        .args(extra)
        .output()
        .expect("node-config runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtimes_pull_once_node_config_has_written_their_files() {
    let plain = Distribution::start(Mode::Open).await;
    let private = Distribution::start(Mode::TlsBasic).await;
    plain.push_runnable_image("team/app", "1").await;
    private.push_runnable_image("team/app", "1").await;
    let plain_image = format!("registry.test:{}/team/app:1", plain.port);
    let private_image = format!("registry.test:{}/team/app:1", private.port);

    // The records, as a user saves them (no check: this service resolves
    // registry.test nowhere).
    let server = common::TestServer::start().await;
    for body in [
        json!({"name": "plain", "server": format!("http://registry.test:{}", plain.port), "namespaces": ["a"]}),
        json!({"name": "private", "server": format!("https://registry.test:{}", private.port),
               "username": USER, "password": PASSWORD, "namespaces": ["a"],
               "tls": {"caBundle": private.ca_pem.clone().expect("ca")}}),
    ] {
        let (status, answer) = server
            .call(Method::POST, "/registries?verify=false", Some(&body))
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    // node-config reads the same store beside the running server.
    let data = server.dir.path().join("data");

    let work = tempfile::tempdir().expect("tempdir");
    let hosts = work.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.1 registry.test\n").expect("hosts");
    let root = work.path().join("node");
    let containerd = Containerd::start();
    let hosts_dir = root.join("etc/containerd/certs.d");
    let pull = |image: &str, credentials: bool| {
        let mut args = vec![
            "--address".to_owned(),
            containerd.socket.display().to_string(),
            "images".into(),
            "pull".into(),
            "--snapshotter".into(),
            "native".into(),
            "--hosts-dir".into(),
            hosts_dir.display().to_string(),
        ];
        if credentials {
            args.extend(["--user".into(), format!("{USER}:{PASSWORD}")]);
        }
        args.push(image.to_owned());
        isolated(&hosts, &[], "ctr", &args)
    };
    let inspect = |image: &str, credentials: bool, docker_certs: Option<&Path>| {
        let mut args = vec!["inspect".to_owned()];
        if credentials {
            args.extend(["--creds".into(), format!("{USER}:{PASSWORD}")]);
        }
        if let Some(dir) = docker_certs {
            args.extend(["--cert-dir".into(), dir.display().to_string()]);
        }
        args.push(format!("docker://{image}"));
        isolated(
            &hosts,
            &[(&root.join("etc/containers"), "/etc/containers")],
            "skopeo",
            &args,
        )
    };
    std::fs::create_dir_all(root.join("etc/containers")).expect("mkdir");

    // Before: each runtime refuses, for the reason a node would.
    let refused = pull(&plain_image, false);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("HTTP response to HTTPS client"),
        "{}",
        text(&refused)
    );
    let refused = pull(&private_image, true);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("certificate signed by unknown authority"),
        "{}",
        text(&refused)
    );
    let refused = inspect(&plain_image, false, None);
    assert!(!refused.status.success(), "{}", text(&refused));
    let refused = inspect(&private_image, true, None);
    assert!(
        text(&refused).contains("unknown authority"),
        "{}",
        text(&refused)
    );

    // `--check` says what it would write, writes nothing, and exits 1.
    let check = node_config(&data, &root, &["--check"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        text(&check).contains(&format!(
            "write  /etc/containerd/certs.d/registry.test:{}/hosts.toml",
            plain.port
        )),
        "{}",
        text(&check)
    );
    assert!(!hosts_dir.exists());

    let written = node_config(&data, &root, &[]);
    assert!(written.status.success(), "{}", text(&written));
    let again = node_config(&data, &root, &["--check"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "nothing left to do: {}",
        text(&again)
    );
    assert!(text(&again).trim().is_empty(), "{}", text(&again));

    // After: containerd pulls both, with no --plain-http or --skip-verify.
    let pulled = pull(&plain_image, false);
    assert!(pulled.status.success(), "{}", text(&pulled));
    let pulled = pull(&private_image, true);
    assert!(pulled.status.success(), "{}", text(&pulled));
    // The containers side through its default paths, and Docker's CA file
    // as the containers library reads a certs.d directory.
    let inspected = inspect(&plain_image, false, None);
    assert!(inspected.status.success(), "{}", text(&inspected));
    let inspected = inspect(&private_image, true, None);
    assert!(inspected.status.success(), "{}", text(&inspected));
    let docker_dir = root.join(format!("etc/docker/certs.d/registry.test:{}", private.port));
    let inspected = inspect(&private_image, true, Some(&docker_dir));
    assert!(inspected.status.success(), "{}", text(&inspected));

    // The records go: so do the files, and the pulls fail again.
    for name in ["plain", "private"] {
        let (status, _) = server
            .call(Method::DELETE, &format!("/registries/{name}"), None)
            .await;
        assert_eq!(status, 204);
    }
    let removed = node_config(&data, &root, &[]);
    assert!(removed.status.success(), "{}", text(&removed));
    assert!(
        text(&removed).contains("remove /etc/containerd/certs.d"),
        "{}",
        text(&removed)
    );
    assert_eq!(
        std::fs::read_dir(&hosts_dir)
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    let refused = pull(&plain_image, false);
    assert!(!refused.status.success(), "{}", text(&refused));
}
