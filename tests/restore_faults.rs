//! Faults in the middle of a transfer (issue #10): the SSH session serving bunker is cut
//! mid-export (`image-archive`) and mid-load (`image-restore`), and `image-restore` is
//! SIGKILLed at eight points of its run. Each time the archive and the engine must hold
//! nothing half-made under the image's name, and a rerun must complete.
//!
//! The sshd and engine are shared with other tests running at the same time, so the
//! session to cut is found precisely: bunker's own TCP connection to the sandbox sshd
//! (its local port, from `ss` filtered on bunker's pid), then the sshd process whose
//! socket has that peer port; only that process and its children are killed.

mod common;
use common::{bytes_read, read_offset};
mod restore_support;
mod signal_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bunker::archive::{ArchDir, Manifest};
use common::*;
use restore_support::*;
use serde_json::Value;
use signal_support::Running;

/// Cuts bunker's SSH session while bunker is stopped (SIGSTOP), so the transfer cannot
/// finish between the moment chosen and the cut; resumes it afterwards.
fn cut_ssh_of(running: &Running, sandbox: &Sandbox) -> usize {
    running.signal(libc::SIGSTOP);
    let killed = cut_ssh(sandbox, running.pid());
    running.signal(libc::SIGCONT);
    killed
}

/// `ss -tnpH <filter>` lines.
fn sockets(filter: &str) -> Vec<String> {
    let output = run(Command::new("ss").args(["-tnpH", filter]));
    output.assert_success();
    output.stdout.lines().map(str::to_string).collect()
}

/// The pids `ss` names in one line (`users:(("x",pid=1,fd=4),...)`).
fn pids_in(line: &str) -> Vec<u32> {
    line.split("pid=")
        .skip(1)
        .filter_map(|rest| rest.split(',').next()?.parse().ok())
        .collect()
}

/// Local ports of the TCP connections process `pid` holds to the sandbox sshd.
fn ssh_ports_of(sandbox: &Sandbox, pid: u32) -> Vec<u16> {
    sockets(&format!("dport = :{}", sandbox.ssh_port))
        .iter()
        .filter(|line| pids_in(line).contains(&pid))
        .filter_map(|line| {
            // State Recv-Q Send-Q Local:Port Peer:Port users...
            let local = line.split_whitespace().nth(3)?;
            local.rsplit(':').next()?.parse().ok()
        })
        .collect()
}

/// The sshd processes serving connections from the local ports `ports`.
fn sshd_sessions_for(sandbox: &Sandbox, ports: &[u16]) -> Vec<u32> {
    let mut pids = Vec::new();
    for line in sockets(&format!("sport = :{}", sandbox.ssh_port)) {
        let peer_port = line
            .split_whitespace()
            .nth(4)
            .and_then(|peer| peer.rsplit(':').next())
            .and_then(|port| port.parse::<u16>().ok());
        if peer_port.is_some_and(|port| ports.contains(&port)) {
            pids.extend(pids_in(&line));
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// `pid` and every process below it.
fn with_descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if let Some(parent) = parent {
            parents.push((child, parent));
        }
    }
    let mut found = vec![pid];
    let mut index = 0;
    while index < found.len() {
        let current = found[index];
        found.extend(
            parents
                .iter()
                .filter(|(_, parent)| *parent == current)
                .map(|(child, _)| *child),
        );
        index += 1;
    }
    found
}

/// SIGKILLs the sshd session process(es) serving bunker (`pid`)'s connections and their
/// children. Returns how many processes were killed; panics when none was found.
fn cut_ssh(sandbox: &Sandbox, pid: u32) -> usize {
    let ports = ssh_ports_of(sandbox, pid);
    assert!(
        !ports.is_empty(),
        "bunker (pid {pid}) holds no connection to the sandbox sshd on port {}",
        sandbox.ssh_port
    );
    let sessions = sshd_sessions_for(sandbox, &ports);
    assert!(
        !sessions.is_empty(),
        "no sshd process serves bunker's ports {ports:?}"
    );
    let mut victims: Vec<u32> = sessions.iter().flat_map(|&s| with_descendants(s)).collect();
    victims.sort_unstable();
    victims.dedup();
    assert!(!victims.contains(&pid), "bunker itself is not a victim");
    for victim in &victims {
        let victim = libc::pid_t::try_from(*victim).unwrap();
        // SAFETY: kill(2) on a pid found above; no memory is involved. A process that
        // already ended (ESRCH) is fine.
        unsafe { libc::kill(victim, libc::SIGKILL) };
    }
    victims.len()
}

/// A partial archive file (`*.partial-*`) anywhere under `dir`.
fn find_partial(dir: &Path) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_partial(&path) {
                return Some(found);
            }
        } else if entry.file_name().to_string_lossy().contains(".partial-") {
            return Some(path);
        }
    }
    None
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

fn manifest_has(arch_dir: &Path, project: &str, image: &str) -> bool {
    let path = arch_dir.join("manifest.json");
    if !path.exists() {
        return false;
    }
    let manifest: Value = serde_json::from_str(&read_text(&path)).unwrap();
    manifest["images"].as_array().unwrap().iter().any(|entry| {
        entry["project"].as_str() == Some(project) && entry["image"].as_str() == Some(image)
    })
}

/// Removes `image` from the engine if it is there (only images this file created).
fn remove_if_present(sandbox: &Sandbox, image: &str) {
    if image_id(sandbox, image).is_some() {
        docker_ok(sandbox, ["rmi", image]);
    }
}

/// `image-restore --jobs 1` of `arch_dir` over SSH: one image at a time.
fn restore_one_at_a_time(home: &TestHome, sandbox: &Sandbox, arch_dir: &Path) -> BunkerCommand {
    restore_command(home, sandbox, arch_dir).args(["--jobs", "1"])
}

/// Cuts bunker's SSH session (see [`cut_ssh_of`]) and waits for the end, which must be
/// exit status 1. (processes killed, how bunker ended)
#[track_caller]
fn cut_ssh_and_finish(running: Running, sandbox: &Sandbox) -> (usize, Output) {
    let killed = cut_ssh_of(&running, sandbox);
    let output = running.output();
    output.assert_code(1);
    (killed, output)
}

#[test]
fn an_ssh_cut_during_an_export_records_nothing_and_the_rerun_completes() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let image = format!("bunker-test/{}:big", unique_name("sshcut-export"));
    let id = build_random_image(&sandbox, &image, 64 << 20);
    let projects = tempfile::tempdir().unwrap();
    fs::create_dir_all(projects.path().join("big")).unwrap();
    fs::write(
        projects.path().join("big/docker-compose.yaml"),
        format!("services:\n  app:\n    image: {image}\n"),
    )
    .unwrap();
    let output_dir = tempfile::tempdir().unwrap();
    let archive = || {
        home.bunker()
            .remote(&sandbox)
            .env("BUILD", "false")
            .projects_dir(projects.path())
            .args(["image-archive", "--level", "1", "--output-dir"])
            .arg(output_dir.path())
    };

    let mut running = Running::start(archive());
    running.wait_until("its export was seen in progress", |_| {
        find_partial(output_dir.path())
            .and_then(|path| fs::metadata(path).ok())
            .is_some_and(|meta| meta.len() > (8 << 20))
    });
    let (killed, output) = cut_ssh_and_finish(running, &sandbox);

    // The error names the image, says it is not archived and what to do.
    output.assert_stderr_contains(&image);
    output.assert_stderr_contains("not archived");
    output.assert_stderr_contains("run bunker image-archive again");
    let files = files_under(output_dir.path());
    let left = files
        .iter()
        .filter(|file| file.contains("/big/") || file.contains(".partial-"))
        .count();
    let arch_dirs: Vec<PathBuf> = fs::read_dir(output_dir.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    let recorded = arch_dirs
        .iter()
        .filter(|dir| manifest_has(dir, "big", &image))
        .count();
    assert_eq!(left, 0, "files left for {image}: {files:?}");
    assert_eq!(recorded, 0, "{image} is recorded in a manifest");

    let rerun = archive().run();
    rerun.assert_success();
    rerun.assert_stdout_contains("1 archived");
    let arch_dir = output_dir.path().join("x86_64");
    assert!(manifest_has(&arch_dir, "big", &image), "{rerun}");
    let manifest = Manifest::load(&arch_dir.join("manifest.json")).unwrap();
    let entry = manifest.find("big", &image).unwrap();
    assert_eq!(entry.docker_id.as_deref(), Some(id.as_str()));
    println!("FAULTS ssh-cut: phase=export cut={killed} recorded={recorded} left={left} rerun=ok");
    docker_ok(&sandbox, ["rmi", &image]);
}

/// An image of `bytes` random bytes archived uncompressed and removed from the engine:
/// (name, id, arch dir, archive file).
fn archived_and_removed(
    sandbox: &Sandbox,
    base: &Path,
    prefix: &str,
    bytes: usize,
) -> (String, String, ArchDir, PathBuf) {
    let image = format!("bunker-test/{}:big", unique_name(prefix));
    let id = build_random_image(sandbox, &image, bytes);
    let arch_dir = archive_from_sandbox(sandbox, base, &[plain("big", &image)]);
    let manifest = Manifest::load(&arch_dir.manifest_path()).unwrap();
    let file = arch_dir.resolve(&manifest.find("big", &image).unwrap().file);
    remove_images(sandbox, &[&image]);
    (image, id, arch_dir, file)
}

#[test]
fn an_ssh_cut_during_a_load_leaves_no_image_and_the_rerun_completes() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let base = tempfile::tempdir().unwrap();
    let (image, id, arch_dir, file) =
        archived_and_removed(&sandbox, base.path(), "sshcut-load", 64 << 20);
    let size = fs::metadata(&file).unwrap().len();

    let mut running = Running::start(restore_one_at_a_time(&home, &sandbox, arch_dir.path()));
    // The load is under way once bunker has hashed the whole file and read 8 MiB more.
    running.wait_until("its load was seen in progress", |pid| {
        read_offset(pid, &file).unwrap_or(0) >= (8 << 20) && bytes_read(pid) > size + (8 << 20)
    });
    let (killed, output) = cut_ssh_and_finish(running, &sandbox);

    // The error names the image and says what to do.
    output.assert_stderr_contains(&format!("error: {image}: the engine did not load"));
    output.assert_stderr_contains("run bunker image-restore again");
    let left = usize::from(image_id(&sandbox, &image).is_some());
    assert_eq!(left, 0, "the cut load left {image} on the engine");
    assert_eq!(
        image_id(&sandbox, &id),
        None,
        "the cut load left {id} on the engine"
    );

    let rerun = restore_one_at_a_time(&home, &sandbox, arch_dir.path()).run();
    rerun.assert_success();
    rerun.assert_stdout_contains("1 loaded");
    assert_eq!(image_id(&sandbox, &image).as_deref(), Some(id.as_str()));
    println!("FAULTS ssh-cut: phase=load cut={killed} recorded=0 left={left} rerun=ok");
    docker_ok(&sandbox, ["rmi", &image]);
}

#[test]
fn image_restore_killed_at_eight_points_never_leaves_a_half_loaded_image() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let base = tempfile::tempdir().unwrap();
    let (image, id, arch_dir, file) =
        archived_and_removed(&sandbox, base.path(), "restore-kill", 32 << 20);
    // The run reads the file twice (the hash check, then the load): kill points at
    // 1/9 .. 8/9 of that.
    let total = 2 * fs::metadata(&file).unwrap().len();
    let points = 8u64;
    let (mut killed_running, mut half_loaded, mut rerun_equal) = (0, 0, 0);
    for point in 1..=points {
        remove_if_present(&sandbox, &image);
        let running = Running::start(restore_one_at_a_time(&home, &sandbox, arch_dir.path()));
        let threshold = total * point / (points + 1);
        if running.kill_when(|pid| bytes_read(pid) >= threshold) {
            killed_running += 1;
        }
        match image_id(&sandbox, &image) {
            None => {}
            Some(found) if found == id => {}
            Some(other) => {
                half_loaded += 1;
                eprintln!("point {point}: {image} points at {other}, not {id}");
            }
        }
        let rerun = restore_one_at_a_time(&home, &sandbox, arch_dir.path()).run();
        rerun.assert_success();
        if image_id(&sandbox, &image).as_deref() == Some(id.as_str()) {
            rerun_equal += 1;
        }
    }
    println!(
        "FAULTS restore-kill: points={points} killed_running={killed_running} \
         half_loaded={half_loaded} rerun_equal={rerun_equal}/{points}"
    );
    assert_eq!(half_loaded, 0);
    assert_eq!(rerun_equal, points);
    assert!(
        killed_running >= 1,
        "no kill landed while the run was going"
    );
    remove_if_present(&sandbox, &image);
}
