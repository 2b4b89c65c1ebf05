//! The issue endpoint's body: what `POST /.s2s/auth/v1/obo/token` reads (the endpoint
//! itself is [`Auth::jit_router`](crate::Auth::jit_router)).

use serde_json::{Map, Value};

use super::JitRequest;

/// The body fields the endpoint knows.
const FIELDS: [&str; 3] = ["description", "service", "durationSeconds"];

/// Reads the issue request: `{"description": string, "service": string?, "durationSeconds":
/// integer or numeric string?}`, every refusal with its message.
pub(crate) fn parse_body(bytes: &[u8]) -> Result<JitRequest, String> {
    let body: Map<String, Value> = match serde_json::from_slice(bytes) {
        Ok(Value::Object(body)) => body,
        _ => return Err("request body must be a JSON object".to_owned()),
    };
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        // OpenSearch's message, so its clients read the same refusal.
        return Err(format!("Unrecognized parameter: {unknown}"));
    }
    let description = match body.get("description") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("description must be a string".to_owned()),
        None => return Err("description is required".to_owned()),
    };
    let service = match body.get("service") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("service must be a string".to_owned()),
    };
    let positive = "durationSeconds must be a positive whole number";
    let duration_seconds = match body.get("durationSeconds") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_u64().filter(|n| *n > 0).ok_or(positive)?),
        Some(Value::String(s)) => Some(
            s.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(positive)?,
        ),
        Some(_) => return Err(positive.to_owned()),
    };
    Ok(JitRequest {
        description,
        service,
        duration_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_body_and_names_every_refusal() {
        let ok = parse_body(br#"{"description":"d","service":"search","durationSeconds":"601"}"#)
            .unwrap();
        assert_eq!(ok.service.as_deref(), Some("search"));
        assert_eq!(ok.duration_seconds, Some(601));
        assert_eq!(
            parse_body(br#"{"description":"d","durationSeconds":42}"#)
                .unwrap()
                .duration_seconds,
            Some(42)
        );
        for (body, message) in [
            (
                &br#"{"description":"d","roles":["admin"]}"#[..],
                "Unrecognized parameter: roles",
            ),
            (b"not json", "request body must be a JSON object"),
            (b"[]", "request body must be a JSON object"),
            (b"", "request body must be a JSON object"),
            (br#"{}"#, "description is required"),
            (br#"{"description":5}"#, "description must be a string"),
            (
                br#"{"description":"d","service":5}"#,
                "service must be a string",
            ),
            (
                br#"{"description":"d","durationSeconds":0}"#,
                "durationSeconds must be a positive whole number",
            ),
            (
                br#"{"description":"d","durationSeconds":-5}"#,
                "durationSeconds must be a positive whole number",
            ),
            (
                br#"{"description":"d","durationSeconds":1.5}"#,
                "durationSeconds must be a positive whole number",
            ),
            (
                br#"{"description":"d","durationSeconds":"soon"}"#,
                "durationSeconds must be a positive whole number",
            ),
            (
                br#"{"description":"d","durationSeconds":"0"}"#,
                "durationSeconds must be a positive whole number",
            ),
            (
                br#"{"description":"d","durationSeconds":true}"#,
                "durationSeconds must be a positive whole number",
            ),
        ] {
            assert_eq!(
                parse_body(body).unwrap_err(),
                message,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
