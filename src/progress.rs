//! Progress bars on a terminal, plain log lines otherwise.
