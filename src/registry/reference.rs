//! Image references as the registry client sees them. There is one reference type,
//! [`crate::image::reference::ImageReference`]: a [`RepositoryName`] (registry host +
//! repository path, the way the distribution API addresses it) plus tag and digest.
//! This module names it for the registry code; user input is read with
//! [`ImageReference::parse_input`] (blanks trimmed, `registry-1.docker.io`, Docker
//! Hub's API host, taken as Docker Hub).

pub use crate::image::reference::{
    DOCKER_HUB, DOCKER_HUB_API_HOST, ImageReference, ReferenceError, RepositoryName,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_short_names_get_library_namespace() {
        let reference = ImageReference::parse_input("alpine").unwrap();
        assert_eq!(reference.name.registry, "docker.io");
        assert_eq!(reference.name.repository, "library/alpine");
        assert_eq!(reference.tag_or_latest(), "latest");
        assert_eq!(reference.familiar_tagged(), "alpine:latest");
    }

    #[test]
    fn registry_with_port_and_nested_path() {
        let reference = ImageReference::parse_input("127.0.0.1:5999/group/sub/app:1.2").unwrap();
        assert_eq!(reference.name.registry, "127.0.0.1:5999");
        assert_eq!(reference.name.repository, "group/sub/app");
        assert_eq!(reference.tag.as_deref(), Some("1.2"));
        assert_eq!(reference.to_string(), "127.0.0.1:5999/group/sub/app:1.2");
        assert_eq!(
            reference.familiar_tagged(),
            "127.0.0.1:5999/group/sub/app:1.2"
        );
    }

    #[test]
    fn digest_pins() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let reference = ImageReference::parse_input(&format!("localhost/app:v1@{digest}")).unwrap();
        assert_eq!(reference.manifest_reference(), digest);
        assert_eq!(reference.tag.as_deref(), Some("v1"));
    }

    #[test]
    fn bad_input_is_rejected_with_reason() {
        assert_eq!(ImageReference::parse_input(" "), Err(ReferenceError::Empty));
        let error = ImageReference::parse_input("Upper/Case")
            .unwrap_err()
            .to_string();
        assert!(error.contains("lowercase"), "{error}");
        let error = ImageReference::parse_input("app@sha256:xyz")
            .unwrap_err()
            .to_string();
        assert!(error.contains("digest"), "{error}");
        assert!(RepositoryName::parse("app:1").is_err());
        let error = ImageReference::parse_input("host:port/app")
            .unwrap_err()
            .to_string();
        assert!(error.contains("port"), "{error}");
        assert_eq!(
            RepositoryName::new("local", "Bad"),
            Err(ReferenceError::Invalid {
                reference: "local/Bad".to_string(),
                reason: "repository component \"Bad\" must be lowercase letters and digits separated by single '.', '_', '__' or '-'".to_string(),
            })
        );
    }

    #[test]
    fn input_agrees_with_the_docker_parser_on_ordinary_names() {
        for text in [
            "nginx",
            "index.docker.io/library/busybox:1",
            "127.0.0.1:5999/group/app:2",
            "ghcr.io/org/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(
                ImageReference::parse(text).unwrap(),
                ImageReference::parse_input(&format!(" {text}\n")).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn hub_aliases_are_normalised() {
        let reference = ImageReference::parse_input("index.docker.io/library/busybox:1").unwrap();
        assert_eq!(reference.name.registry, "docker.io");
        assert_eq!(reference.familiar_tagged(), "busybox:1");
        let api_host = ImageReference::parse_input("registry-1.docker.io/busybox:1").unwrap();
        assert_eq!(api_host, ImageReference::parse_input("busybox:1").unwrap());
    }
}
