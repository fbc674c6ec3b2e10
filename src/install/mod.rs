//! `install`: bring projects up with Docker Compose on the remote engine.
