//! Placeholder expansion (temporary minimal version; replaced by the full module).

#[derive(Default, Clone)]
pub struct Overrides;

#[derive(Debug, thiserror::Error)]
#[error("Invalid placeholder \"{0}\" in string: {1}")]
pub struct PlaceholderError(pub String, pub String);

pub fn replace_placeholders(text: &str, _o: &Overrides) -> Result<String, PlaceholderError> {
    Ok(text.to_string())
}
