//! Payload encoders shared by the stored types: a failure to encode is an error that names the
//! type, never an empty payload.

use serde::Serialize;

use crate::error::{Error, Result};

/// JSON bytes of a stored type; a failure names what did not encode.
pub fn to_json<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| Error::internal(format!("{what} does not encode")).with_source(e))
}

/// Postcard bytes of a stored type; a failure names what did not encode.
pub fn to_postcard<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>> {
    postcard::to_stdvec(value)
        .map_err(|e| Error::internal(format!("{what} does not encode")).with_source(e))
}
