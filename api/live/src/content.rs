//! Reading a document's content on the server: its root types as text or JSON.

use serde_json::{Map, Value};
use yrs::branch::BranchPtr;
use yrs::types::ToJson;
use yrs::{
    Array as _, ArrayRef, Doc, GetString, Map as _, MapRef, Out, ReadTxn, TextRef, Transact,
    XmlFragment as _, XmlFragmentRef,
};

fn any_to_json(any: yrs::Any) -> Value {
    serde_json::to_value(any).unwrap_or(Value::Null)
}

/// What kind of shared type a root holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    Text,
    Xml,
    Map,
    Array,
}

impl RootKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RootKind::Text => "text",
            RootKind::Xml => "XML fragment",
            RootKind::Map => "map",
            RootKind::Array => "array",
        }
    }
}

/// A root the server never declared has no type yet; its content says which it is: keys
/// make a map, XML children an XML fragment, other children without text an array, and
/// anything else (empty included) is text.
fn undefined_kind<T: ReadTxn>(branch: BranchPtr, txn: &T) -> RootKind {
    if MapRef::from(branch).len(txn) > 0 {
        RootKind::Map
    } else if XmlFragmentRef::from(branch).first_child().is_some() {
        RootKind::Xml
    } else if ArrayRef::from(branch).len(txn) > 0
        && TextRef::from(branch).get_string(txn).is_empty()
    {
        RootKind::Array
    } else {
        RootKind::Text
    }
}

/// The kind of a root as a transaction returns it.
pub fn root_kind<T: ReadTxn>(root: &Out, txn: &T) -> RootKind {
    match root {
        Out::YText(_) | Out::YXmlText(_) => RootKind::Text,
        Out::YXmlFragment(_) | Out::YXmlElement(_) => RootKind::Xml,
        Out::YArray(_) => RootKind::Array,
        Out::UndefinedRef(branch) => undefined_kind(*branch, txn),
        Out::YMap(_) | Out::Any(_) | Out::YDoc(_) => RootKind::Map,
    }
}

fn undefined_to_json<T: ReadTxn>(branch: BranchPtr, txn: &T) -> Value {
    match undefined_kind(branch, txn) {
        RootKind::Map => any_to_json(MapRef::from(branch).to_json(txn)),
        RootKind::Xml => Value::String(XmlFragmentRef::from(branch).get_string(txn)),
        RootKind::Array => any_to_json(ArrayRef::from(branch).to_json(txn)),
        RootKind::Text => Value::String(TextRef::from(branch).get_string(txn)),
    }
}

fn out_to_json<T: ReadTxn>(value: Out, txn: &T) -> Value {
    match value {
        Out::Any(any) => any_to_json(any),
        Out::YText(text) => Value::String(text.get_string(txn)),
        Out::YArray(array) => any_to_json(array.to_json(txn)),
        Out::YMap(map) => any_to_json(map.to_json(txn)),
        Out::YXmlElement(xml) => Value::String(xml.get_string(txn)),
        Out::YXmlFragment(xml) => Value::String(xml.get_string(txn)),
        Out::YXmlText(xml) => Value::String(xml.get_string(txn)),
        Out::YDoc(_) => Value::Null,
        Out::UndefinedRef(branch) => undefined_to_json(branch, txn),
    }
}

/// Every root type by name.
pub fn to_json(doc: &Doc) -> Value {
    let txn = doc.transact();
    let mut roots: Vec<(String, Value)> = txn
        .root_refs()
        .map(|(name, value)| (name.to_owned(), out_to_json(value, &txn)))
        .collect();
    roots.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(roots.into_iter().collect::<Map<_, _>>())
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The text of `root`, or — without a root — of the only root (roots joined by a newline,
/// in name order, when there are several). A missing root is empty text.
pub fn to_text(doc: &Doc, root: Option<&str>) -> String {
    let json = to_json(doc);
    let roots = json.as_object().expect("to_json returns an object");
    match root {
        Some(name) => roots.get(name).map(as_text).unwrap_or_default(),
        None => roots.values().map(as_text).collect::<Vec<_>>().join("\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Text, Update};

    #[test]
    fn undeclared_roots_render_as_text_or_map() {
        let source = Doc::new();
        source
            .get_or_insert_text("text")
            .push(&mut source.transact_mut(), "hello");
        source
            .get_or_insert_map("meta")
            .insert(&mut source.transact_mut(), "k", "v");
        let update = source
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        let server = Doc::new();
        server
            .transact_mut()
            .apply_update(Update::decode_v1(&update).unwrap())
            .unwrap();
        assert_eq!(
            to_json(&server),
            serde_json::json!({"meta": {"k": "v"}, "text": "hello"})
        );
        assert_eq!(to_text(&server, Some("text")), "hello");
        assert_eq!(to_text(&server, Some("missing")), "");
    }
}
