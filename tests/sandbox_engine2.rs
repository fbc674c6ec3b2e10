//! Engine 2 of the sandbox (issue #12): Docker 26 with the containerd image store next to
//! Docker 20.10, reached the same way through its own sshd port. These checks keep the
//! engine matrix honest: if `scripts/sandbox.sh up-engine2` quietly started a second
//! classic engine, or its sshd led to engine 1, every `BUNKER_TEST_ENGINE=2` run would
//! test the wrong thing.

mod common;

use common::*;

fn engines() -> (Sandbox, Sandbox) {
    let first = load_engine1();
    let second = first.engine2();
    (first, second)
}

/// Engine 1 whatever `BUNKER_TEST_ENGINE` says.
fn load_engine1() -> Sandbox {
    let sandbox = sandbox();
    if sandbox.engine == 1 {
        return sandbox;
    }
    Sandbox::from_env_file(&sandbox.dir.join("env.sh"))
}

#[test]
fn engine2_is_docker_26_with_the_containerd_image_store() {
    let (first, second) = engines();
    assert_eq!(second.engine, 2);
    let version = docker_ok(&second, ["version", "--format", "{{.Server.Version}}"]);
    assert!(version.starts_with("26."), "engine 2 runs Docker {version}");
    let driver_status = docker_ok(&second, ["info", "--format", "{{json .DriverStatus}}"]);
    assert!(
        driver_status.contains("io.containerd.snapshotter.v1"),
        "engine 2 does not use the containerd image store: {driver_status}"
    );
    let first_version = docker_ok(&first, ["version", "--format", "{{.Server.Version}}"]);
    assert!(
        first_version.starts_with("20.10"),
        "engine 1 runs Docker {first_version}"
    );
    assert_ne!(first.docker_host, second.docker_host);
    // The seed image the tests build on is there, as on engine 1.
    assert!(
        image_id(&second, &second.seed_image).is_some(),
        "engine 2 lacks {}",
        second.seed_image
    );
}

#[test]
fn bunker_reaches_engine2_through_its_own_sshd_port() {
    let (first, second) = engines();
    assert_ne!(first.ssh_port, second.ssh_port);
    let home = TestHome::new(&second);
    let info = home.bunker().remote(&second).args(["engine", "info"]).run();
    info.assert_success();
    info.assert_stdout_contains(&format!("Engine:         {}", second.ssh_url()));
    info.assert_stdout_contains("Engine version: 26.");
    info.assert_stdout_contains("Storage driver: overlayfs");
}
