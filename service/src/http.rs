//! The server side of the error contract: every error answer of node-lite and of the
//! oracle is JSON [`ErrorBody`] `{"code", "message"}` with the status of its code.
//!
//! Handlers return [`ApiError`]; bodies are read with [`JsonBody`] (a malformed body is
//! `bad_json`, an oversized one `body_too_large`); and [`json_errors`], layered over the
//! whole router, rewrites the answers axum makes on its own (404 for an unknown route, 405
//! for a wrong method, 413 from the body limit, a static file that is not there) into the
//! same JSON.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dsi_api::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;

/// An error answer: a code (which decides the HTTP status) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// An answer with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A failure inside the server: logged with its detail, answered as `internal` without
    /// it (internal errors are not leaked to clients).
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            code: self.code,
            message: self.message,
        };
        (status, Json(body)).into_response()
    }
}

/// A JSON request body of type `T`. Unlike axum's `Json` it does not insist on a
/// content type, and its failures are [`ApiError`]s: `body_too_large` past the router's
/// body limit, `bad_json` (with serde's explanation) for anything that is not a `T`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                ApiError::new(
                    ErrorCode::for_status(status.as_u16()),
                    rejection.body_text(),
                )
            })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body, or says what is wrong with it (`bad_json`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::BadJson, format!("invalid JSON body: {e}")))
}

/// Middleware (`axum::middleware::from_fn(json_errors)`, outermost): an error answer that
/// is not JSON yet becomes [`ErrorBody`] with the code of its status
/// ([`ErrorCode::for_status`]) and that code's status (a 416 from the static files becomes
/// `bad_request`, 400), with a message naming the request; the answer's other headers
/// (`allow`, CORS) are kept.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let path = uri.path();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = ErrorCode::for_status(status.as_u16());
    let message = match code {
        ErrorCode::NotFound => format!("no route {method} {path}"),
        ErrorCode::MethodNotAllowed => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("other methods");
            format!("{method} is not allowed on {path} (allowed: {allowed})")
        }
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
        _ => text,
    };
    // The same answer a handler's ApiError gives, with the original's other headers.
    let mut answer = ApiError::new(code, message).into_response();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut last = None;
    for (name, value) in parts.headers.drain() {
        // Further values of a repeated header come without their name.
        if name.is_some() {
            last = name;
        }
        if let Some(name) = &last {
            answer.headers_mut().append(name.clone(), value);
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    async fn echo(JsonBody(value): JsonBody<Vec<u32>>) -> Json<Vec<u32>> {
        Json(value)
    }

    fn app() -> Router {
        Router::new()
            .route("/x", get(|| async { "ok" }))
            .route("/echo", post(echo))
            .route(
                "/teapot",
                get(|| async { ApiError::new(ErrorCode::UnknownEpoch, "no such epoch") }),
            )
            .layer(DefaultBodyLimit::max(64))
            .layer(axum::middleware::from_fn(json_errors))
    }

    async fn call(request: axum::http::Request<Body>) -> (u16, Option<ErrorBody>) {
        let response = app().oneshot(request).await.expect("router answers");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).ok())
    }

    fn request(method: &str, uri: &str, body: &str) -> axum::http::Request<Body> {
        axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_string()))
            .expect("request")
    }

    #[tokio::test]
    async fn every_error_is_json_with_its_code() {
        let cases = [
            (request("GET", "/nope", ""), 404, ErrorCode::NotFound),
            (
                request("DELETE", "/x", ""),
                405,
                ErrorCode::MethodNotAllowed,
            ),
            (request("POST", "/echo", "[1,"), 400, ErrorCode::BadJson),
            (
                request("POST", "/echo", "{\"a\":1}"),
                400,
                ErrorCode::BadJson,
            ),
            (
                request("POST", "/echo", &format!("[{}1]", "1,".repeat(40))),
                413,
                ErrorCode::BodyTooLarge,
            ),
            (request("GET", "/teapot", ""), 404, ErrorCode::UnknownEpoch),
        ];
        for (req, status, code) in cases {
            let what = format!("{} {}", req.method(), req.uri());
            let (got, body) = call(req).await;
            assert_eq!(got, status, "{what}");
            let body = body.unwrap_or_else(|| panic!("{what}: not an ErrorBody"));
            assert_eq!(body.code, code, "{what}: {}", body.message);
            assert!(!body.message.is_empty(), "{what}");
        }
        let (status, body) = call(request("POST", "/echo", "[1,2]")).await;
        assert_eq!(status, 200);
        assert!(body.is_none());
    }
}
