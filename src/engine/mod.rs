//! The Docker engine connection: target resolution (DOCKER_HOST, contexts,
//! ssh config), the russh session and bollard over it.
