//! HTTP plumbing every provider module shares: query strings, absolute links,
//! plain JSON answers. Nothing here knows a provider.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// `http://host[:port]` as the client addressed us (Host header), so absolute
/// links work behind port mappings; `bound` (the bound address) otherwise.
pub(crate) fn origin(headers: &HeaderMap, bound: &str) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map_or_else(|| bound.to_string(), |h| format!("http://{h}"))
}

/// Decoded query pairs, in request order.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// First value of `key` in decoded query pairs.
pub(crate) fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `url` with the query `pairs`, `key` replaced by `value` (or removed when
/// `None`), keeping the other parameters in order.
pub(crate) fn url_with_param(
    url: &str,
    pairs: &[(String, String)],
    key: &str,
    value: Option<&str>,
) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    let mut placed = false;
    for (k, v) in pairs {
        if k == key {
            if let (Some(value), false) = (value, placed) {
                out.append_pair(k, value);
            }
            placed = true;
        } else {
            out.append_pair(k, v);
        }
    }
    if let (Some(value), false) = (value, placed) {
        out.append_pair(key, value);
    }
    let query = out.finish();
    if query.is_empty() {
        url.to_string()
    } else {
        format!("{url}?{query}")
    }
}

/// Plain `(status, JSON body)` answer.
pub(crate) fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}
