//! Peapod's API machinery: the Kubernetes vocabulary with no IO, no async and no clock.
//!
//! Types come from `k8s-openapi` (re-exported as [`k8s`]); this crate adds what Kubernetes' apiserver, kubelet and
//! printers compute from them: defaulting, validation with Kubernetes' field-error wording, strict decoding,
//! label and field selectors, patches, quantities, server-side Table rows and human durations. Time is always a
//! parameter, so every function here is deterministic and unit-tested.

pub use k8s_openapi as k8s;

pub mod defaults;
pub mod duration;
pub mod errors;
pub mod patch;
pub mod pod_status;
pub mod quantity;
pub mod resources;
pub mod selectors;
pub mod strict;
pub mod table;
pub mod validation;

pub use errors::{ApiError, ErrorList, FieldError, FieldErrorKind};
pub use resources::ResourceInfo;
