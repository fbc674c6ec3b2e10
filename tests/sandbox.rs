//! Proves the test sandbox is alive and shaped as every other integration test expects:
//! the private engine answers on its socket, both registries answer (one demanding
//! credentials), sshd accepts the sandbox key and forwards to the engine, and the seed
//! images exist. When one of these fails, the other integration tests cannot be trusted.

mod common;

use common::{
    TestHome, build_unique_image, copy_to_auth_registry, docker, docker_ok, http_status, image_id,
    parse_env_file, push_to_registry, read_text, run, sandbox, shell_unquote, ssh, unique_name,
};
use std::process::Command;

#[test]
fn engine_answers_on_its_local_socket() {
    let sandbox = sandbox();
    let version = docker_ok(&sandbox, ["version", "--format", "{{.Server.Version}}"]);
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "unexpected server version {version:?}"
    );
    let root = docker_ok(&sandbox, ["info", "--format", "{{.DockerRootDir}}"]);
    assert!(
        root.starts_with(&sandbox.dir.to_string_lossy().into_owned()),
        "engine data root {root} is not inside the sandbox {:?}: is this the system engine?",
        sandbox.dir
    );
}

#[test]
fn engine_creates_bridge_networks_like_compose_does() {
    let sandbox = sandbox();
    let network = unique_name("net");
    let container = unique_name("ctr");
    docker_ok(&sandbox, ["network", "create", &network]);
    let started = docker(
        &sandbox,
        [
            "run",
            "-d",
            "--name",
            &container,
            "--network",
            &network,
            &sandbox.seed_image,
            "sleep",
            "300",
        ],
    );
    let address = docker(
        &sandbox,
        [
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &container,
        ],
    );
    docker(&sandbox, ["rm", "-f", &container]);
    docker_ok(&sandbox, ["network", "rm", &network]);
    started.assert_success();
    address.assert_success();
    assert!(
        address.stdout.trim().starts_with("10."),
        "container got no address from the sandbox pool: {address}"
    );
}

#[test]
fn plain_registry_answers_v2_without_credentials() {
    let sandbox = sandbox();
    assert_eq!(
        http_status(&format!("{}/v2/", sandbox.registry_url()), None),
        200
    );
}

#[test]
fn auth_registry_demands_the_generated_credentials() {
    let sandbox = sandbox();
    let url = format!("{}/v2/", sandbox.auth_registry_url());
    assert_eq!(http_status(&url, None), 401);
    assert_eq!(
        http_status(&url, Some((sandbox.auth_user.as_str(), "wrong-password"))),
        401
    );
    assert_eq!(
        http_status(
            &url,
            Some((sandbox.auth_user.as_str(), sandbox.auth_password.as_str()))
        ),
        200
    );
}

#[test]
fn seed_images_exist_on_engine_and_in_both_registries() {
    let sandbox = sandbox();
    let seed_id = image_id(&sandbox, &sandbox.seed_image)
        .unwrap_or_else(|| panic!("seed image {} missing on the engine", sandbox.seed_image));
    let shell = docker_ok(
        &sandbox,
        [
            "run",
            "--rm",
            &sandbox.seed_image,
            "sh",
            "-c",
            "echo $((40 + 2))",
        ],
    );
    assert_eq!(shell, "42");

    let (registry, repository_and_tag) = sandbox
        .registry_image
        .split_once('/')
        .expect("SANDBOX_REGISTRY_IMAGE has a registry part");
    assert_eq!(registry, sandbox.registry);
    let (repository, tag) = repository_and_tag
        .rsplit_once(':')
        .expect("SANDBOX_REGISTRY_IMAGE has a tag");
    let manifest = format!("{}/v2/{repository}/manifests/{tag}", sandbox.registry_url());
    assert_eq!(http_status(&manifest, None), 200);
    let auth_manifest = format!(
        "{}/v2/{repository}/manifests/{tag}",
        sandbox.auth_registry_url()
    );
    assert_eq!(
        http_status(
            &auth_manifest,
            Some((sandbox.auth_user.as_str(), sandbox.auth_password.as_str()))
        ),
        200
    );
    for shared in [
        "bunker/httpd/manifests/1.36",
        "bunker/busybox/manifests/latest",
    ] {
        let url = format!("{}/v2/{shared}", sandbox.registry_url());
        assert_eq!(http_status(&url, None), 200, "{url}");
    }
    assert!(seed_id.starts_with("sha256:"), "odd image id {seed_id}");
}

#[test]
fn engine_pushes_to_and_pulls_from_the_plain_registry() {
    let sandbox = sandbox();
    let local_tag = format!("{}:1", unique_name("bunker-test/roundtrip"));
    let built_id = build_unique_image(&sandbox, &local_tag);
    let remote_tag = push_to_registry(&sandbox, &local_tag, &local_tag);
    docker_ok(&sandbox, ["rmi", &local_tag]);
    assert_eq!(image_id(&sandbox, &remote_tag), None);
    docker_ok(&sandbox, ["pull", "-q", &remote_tag]);
    let pulled_id = image_id(&sandbox, &remote_tag);
    docker(&sandbox, ["rmi", &remote_tag]);
    assert_eq!(pulled_id, Some(built_id));
}

#[test]
fn auth_registry_serves_copied_images_only_with_credentials() {
    let sandbox = sandbox();
    let repository = unique_name("bunker-test/private");
    let local_tag = format!("{repository}:2");
    build_unique_image(&sandbox, &local_tag);
    push_to_registry(&sandbox, &local_tag, &local_tag);
    docker_ok(&sandbox, ["rmi", &local_tag]);
    let target = copy_to_auth_registry(&sandbox, &local_tag);
    assert_eq!(target, format!("{}/{local_tag}", sandbox.auth_registry));
    let manifest = format!(
        "{}/v2/{repository}/manifests/2",
        sandbox.auth_registry_url()
    );
    assert_eq!(http_status(&manifest, None), 401);
    assert_eq!(
        http_status(
            &manifest,
            Some((sandbox.auth_user.as_str(), sandbox.auth_password.as_str()))
        ),
        200
    );
}

#[test]
fn ssh_with_the_sandbox_key_runs_commands_next_to_the_engine() {
    let sandbox = sandbox();
    let output = ssh(&sandbox, "echo \"$DOCKER_HOST\"");
    output.assert_success();
    assert_eq!(output.stdout.trim(), sandbox.docker_host);

    let remote_version = ssh(&sandbox, "docker version --format '{{.Server.Version}}'");
    remote_version.assert_success();
    let local_version = docker_ok(&sandbox, ["version", "--format", "{{.Server.Version}}"]);
    assert_eq!(remote_version.stdout.trim(), local_version);

    let socket = ssh(
        &sandbox,
        &format!("test -S '{}' && echo socket", sandbox.remote_socket),
    );
    socket.assert_success().assert_stdout_contains("socket");
}

#[test]
fn prepared_home_ssh_config_alias_reaches_the_engine() {
    // OpenSSH reads ~/.ssh from the passwd entry, not $HOME, hence the explicit -F.
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let output = run(Command::new("ssh")
        .arg("-F")
        .arg(home.ssh_dir().join("config"))
        .arg("sandbox")
        .arg("docker version --format '{{.Server.Version}}'"));
    output.assert_success();
    let local_version = docker_ok(&sandbox, ["version", "--format", "{{.Server.Version}}"]);
    assert_eq!(output.stdout.trim(), local_version);
}

#[test]
fn prepared_home_knows_the_sandbox_host_key() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let known_hosts = read_text(&home.ssh_dir().join("known_hosts"));
    let host_key = read_text(&sandbox.ssh_host_key_pub);
    let key_material = host_key
        .split_whitespace()
        .nth(1)
        .expect("host key file has a key");
    assert!(
        known_hosts.starts_with(&format!("[{}]:{} ", sandbox.ssh_host, sandbox.ssh_port)),
        "{known_hosts}"
    );
    assert!(known_hosts.contains(key_material), "{known_hosts}");
    assert_eq!(sandbox.known_hosts_line(), known_hosts.trim());
}

#[test]
fn bunker_binary_runs_with_the_prepared_home() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let output = home.bunker().arg("--version").run();
    output.assert_success().assert_stdout_contains("bunker");
    let unknown = home.bunker().arg("no-such-command").run();
    unknown
        .assert_code(2)
        .assert_stderr_contains("no-such-command");
}

#[test]
fn unique_names_differ_and_are_valid_image_names() {
    let first = unique_name("Bunker-Test");
    let second = unique_name("Bunker-Test");
    assert_ne!(first, second);
    assert!(
        first
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{first}"
    );
}

#[test]
fn env_file_values_are_unquoted_like_bash_does() {
    assert_eq!(
        shell_unquote(r"\[127.0.0.1\]:22922\ ssh-ed25519\ AAAA"),
        "[127.0.0.1]:22922 ssh-ed25519 AAAA"
    );
    assert_eq!(shell_unquote("'a b'c"), "a bc");
    assert_eq!(shell_unquote(r"$'a\nb'"), "a\nb");
    let values = parse_env_file("# comment\nexport A=1\nexport B=x\\ y\nC=2\n");
    assert_eq!(values.get("A").map(String::as_str), Some("1"));
    assert_eq!(values.get("B").map(String::as_str), Some("x y"));
    assert!(!values.contains_key("C"));
}

#[test]
fn env_file_matches_what_sandbox_sh_env_prints() {
    let sandbox = sandbox();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sandbox.sh");
    let output = run(Command::new("bash")
        .arg(script)
        .arg("env")
        .env("BUNKER_SANDBOX_DIR", &sandbox.dir));
    output.assert_success();
    let printed = parse_env_file(&output.stdout);
    assert_eq!(
        printed.get("SANDBOX_DOCKER_HOST"),
        Some(&sandbox.docker_host)
    );
    assert_eq!(printed.get("SANDBOX_REGISTRY"), Some(&sandbox.registry));
    assert_eq!(
        printed.get("SANDBOX_AUTH_PASSWORD"),
        Some(&sandbox.auth_password)
    );
}

#[test]
fn sandbox_script_rejects_an_unknown_command_with_usage() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sandbox.sh");
    let state = tempfile::tempdir().expect("temporary state directory");
    let output = run(Command::new("bash")
        .arg(script)
        .arg("start")
        .env("BUNKER_SANDBOX_DIR", state.path()));
    output
        .assert_code(2)
        .assert_stderr_contains("usage: scripts/sandbox.sh up | down [--purge] | env | status");
}

#[test]
fn sandbox_env_without_state_tells_to_run_up() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sandbox.sh");
    let state = tempfile::tempdir().expect("temporary state directory");
    let output = run(Command::new("bash")
        .arg(script)
        .arg("env")
        .env("BUNKER_SANDBOX_DIR", state.path()));
    output
        .assert_code(1)
        .assert_stderr_contains("run scripts/sandbox.sh up first");
    let status = run(Command::new("bash")
        .arg(script)
        .arg("status")
        .env("BUNKER_SANDBOX_DIR", state.path()));
    status
        .assert_code(1)
        .assert_stdout_contains("dockerd        stopped");
}
