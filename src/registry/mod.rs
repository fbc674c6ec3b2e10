//! The OCI distribution API client and the registry-side jobs.
