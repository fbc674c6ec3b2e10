//! The name bunker gives a running image whose tag has moved: the original
//! repository with the tag `<tag>-deployed-<first 12 hex digits of the image ID>`,
//! so it sorts next to the tag it came from and two running versions of one tag
//! never share a name. The original name is recorded beside it in the manifest
//! (`deployed_as`), and `image-restore` gives it back.

use crate::image::reference::ImageReference;

/// Docker's longest tag.
const MAX_TAG: usize = 128;

/// `localhost:5999/app:1.0` running `sha256:0123456789abcdef…` →
/// `localhost:5999/app:1.0-deployed-0123456789ab`. `None` when `image` is not a
/// name (a container created from an image ID).
pub fn deployed_name(image: &str, image_id: &str) -> Option<String> {
    if looks_like_id(image) {
        return None;
    }
    let reference = ImageReference::parse(image).ok()?;
    let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    let short = &hex[..hex.len().min(12)];
    let suffix = format!("-deployed-{short}");
    let tag = reference.effective_tag().unwrap_or("digest");
    let keep = tag.len().min(MAX_TAG.saturating_sub(suffix.len()));
    Some(format!(
        "{}:{}{suffix}",
        reference.familiar_repository(),
        &tag[..keep]
    ))
}

/// True for `sha256:…` and bare 64-digit hex IDs.
pub fn looks_like_id(image: &str) -> bool {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    image.starts_with("sha256:") || (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_deployed_name_keeps_repository_and_tag_and_adds_the_short_id() {
        assert_eq!(
            deployed_name("localhost:5999/app:1.0", ID).as_deref(),
            Some("localhost:5999/app:1.0-deployed-0123456789ab")
        );
        assert_eq!(
            deployed_name("nginx", ID).as_deref(),
            Some("nginx:latest-deployed-0123456789ab")
        );
        assert_eq!(deployed_name(ID, ID), None);
        let long = format!("app:{}", "t".repeat(128));
        let name = deployed_name(&long, ID).unwrap();
        let tag = name.rsplit_once(':').unwrap().1;
        assert_eq!(tag.len(), 128);
        assert!(tag.ends_with("-deployed-0123456789ab"));
    }
}
