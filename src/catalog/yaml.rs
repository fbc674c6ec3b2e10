//! Reads a YAML document into a `serde_json::Value`, the untyped tree the catalog
//! works on. serde-saphyr applies anchors, aliases and `<<` merge keys while
//! parsing; this module only makes the tree JSON-shaped: every mapping key
//! becomes a string (`80:` → `"80"`), as Compose's loader does.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A YAML syntax error with its 1-based line, when the parser knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: Option<usize>,
    pub message: String,
}

/// Parses `text` into a JSON value (an empty document gives `Value::Null`).
pub fn parse_yaml(text: &str) -> Result<Value, YamlError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    // YAML 1.2 booleans (`yes`/`on` stay strings), as in Compose's go-yaml v3.
    let options = serde_saphyr::options! { strict_booleans: true };
    match serde_saphyr::from_str_with_options::<JsonTree>(text, options) {
        Ok(tree) => Ok(tree.0),
        Err(error) => {
            let line = error.location().map(|location| location.line() as usize);
            let message = error.to_string();
            let message = message.lines().next().unwrap_or("invalid YAML");
            let message = message
                .strip_prefix("error: ")
                .unwrap_or(message)
                .to_string();
            Err(YamlError { line, message })
        }
    }
}

struct JsonTree(Value);

impl<'de> Deserialize<'de> for JsonTree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor).map(JsonTree)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any YAML value")
    }
    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }
    fn visit_i128<E>(self, value: i128) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }
    fn visit_u128<E>(self, value: u128) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number))
    }
    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }
    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(JsonTree(item)) = access.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(KeyText(key)) = access.next_key()? {
            let JsonTree(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// A mapping key of any scalar type, as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(TreeVisitor)? {
            Value::String(text) => Ok(KeyText(text)),
            Value::Null => Ok(KeyText("null".to_string())),
            Value::Bool(value) => Ok(KeyText(value.to_string())),
            Value::Number(number) => Ok(KeyText(number.to_string())),
            Value::Array(_) | Value::Object(_) => Err(de::Error::custom(
                "a mapping key must be a scalar, not a sequence or mapping",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_and_anchors_apply() {
        let text =
            "x: &base\n  image: a\n  build: .\nservices:\n  s:\n    <<: *base\n    image: b\n";
        let value = parse_yaml(text).unwrap();
        assert_eq!(value["services"]["s"]["image"], "b");
        assert_eq!(value["services"]["s"]["build"], ".");
    }

    #[test]
    fn scalar_keys_become_strings() {
        let value = parse_yaml("80: x\ntrue: y\n1.5: z\nflag: yes\n").unwrap();
        assert_eq!(value["80"], "x");
        assert_eq!(value["true"], "y");
        assert_eq!(value["flag"], "yes");
        assert_eq!(value["1.5"], "z");
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let error = parse_yaml("services:\n  s:\n    image: [a\n").unwrap_err();
        assert!(error.line.is_some(), "{error:?}");
        let error = parse_yaml("a: 1\nb: *missing\n").unwrap_err();
        assert_eq!(error.line, Some(2), "{error:?}");
    }
}
