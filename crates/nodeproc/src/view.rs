//! Reading a node's `/v1/cluster` answer (pure JSON helpers).

use serde_json::Value;

/// The voter count a healthy cluster of `nodes` keeps: 3, or 5 with 5 nodes or more.
pub fn full_voters(nodes: usize) -> usize {
    if nodes >= 5 {
        5
    } else {
        nodes.min(3)
    }
}

/// A node id in a JSON answer (string or number).
pub fn json_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The states `view` (a `/v1/cluster` answer) lists for member `id`.
pub fn member_states(view: &Value, id: &str) -> Vec<String> {
    view["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| json_id(&m["id"]).as_deref() == Some(id))
                .map(|m| m["state"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn voters_ids_and_states() {
        assert_eq!([1, 2, 3, 4, 5, 7].map(full_voters), [1, 2, 3, 3, 5, 5]);
        assert_eq!(json_id(&json!("12")).as_deref(), Some("12"));
        assert_eq!(json_id(&json!(12)).as_deref(), Some("12"));
        assert_eq!(json_id(&json!(null)), None);
        let view = json!({"members": [{"id": "1", "state": "down"}, {"id": 1, "state": "active"}, {"id": "2", "state": "active"}]});
        assert_eq!(member_states(&view, "1"), ["down", "active"]);
        assert!(member_states(&json!({}), "1").is_empty());
    }
}
