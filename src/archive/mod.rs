//! Archive layout and names, manifest.json, the streaming writer and verify.
