//! The MetaService HTTP endpoint: health, role, Prometheus metrics,
//! read-only query endpoints (docs/operations.md), the status page and the
//! drain API. This file only names the parts and what they export:
//!
//! - `server`: the listener, TLS, connection limits and timeouts (hyper
//!   parses HTTP/1.1);
//! - `routes`: request checks, the bearer token, routing and the JSON
//!   handlers;
//! - `params`: query parameter decoding and `/get_all_keys` paging;
//! - `fuzzing`: the fuzz targets' entry point.
//!
//! | path | answer |
//! |---|---|
//! | `/` | the status page (HTML; see [`crate::status`]) |
//! | `/health` | `ok` (text) |
//! | `/role` | `{"role": "leader"}` |
//! | `/metrics` | Prometheus text ([`crate::metrics::render_prometheus`]) |
//! | `/query_key?key=K` | `{"key","size","replicas":[{"service_id","medium"}]}` or 404 |
//! | `/batch_query_keys?keys=a,b` | `[{"key","found",...}, ...]` |
//! | `/get_all_keys?cursor=C&limit=L` | `{"keys":[...],"next_cursor":N or null}` |
//! | `/get_all_segments` | `[{"service_id","host_id","transfer_addr","medium","capacity","used","objects"}]` |
//! | `/api/v1/capacity/usage` | `{"dram":{"capacity","used","percent"}, ...}` |
//! | `/api/v1/status` | everything the status page shows (docs/operations.md) |
//! | `/api/v1/drain?service_id=N` | `POST` starts draining provider N, `GET` reports it |
//!
//! GET only, except `POST` on `/api/v1/drain`; no request bodies. With a
//! cluster token, every path but `/health` and `/` (the page holds no data;
//! it asks for the token) needs `Authorization: Bearer <token>`.

use std::sync::Arc;

mod params;
mod routes;
mod server;

pub use params::{percent_decode, DEFAULT_KEYS_LIMIT, MAX_KEYS_LIMIT};
pub use routes::drain_json;
pub use server::{serve_http, serve_http_with, Limits, MAX_CONNECTIONS, MAX_HEAD, MAX_HEADERS};

/// Tells which role this MetaService plays now ("leader" or "standby").
pub type RoleFn = Arc<dyn Fn() -> &'static str + Send + Sync>;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod tests;
