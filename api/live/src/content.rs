//! Reading a document's content on the server: its root types as text or JSON.

use serde_json::{Map, Value};
use yrs::branch::BranchPtr;
use yrs::types::ToJson;
use yrs::{Doc, GetString, Map as _, MapRef, Out, ReadTxn, TextRef, Transact};

fn any_to_json(any: yrs::Any) -> Value {
    serde_json::to_value(any).unwrap_or(Value::Null)
}

/// A root the server never declared has no type yet: a map if it has keys, else text.
fn undefined_to_json<T: ReadTxn>(branch: BranchPtr, txn: &T) -> Value {
    let map = MapRef::from(branch);
    if map.len(txn) == 0 {
        Value::String(TextRef::from(branch).get_string(txn))
    } else {
        any_to_json(map.to_json(txn))
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
