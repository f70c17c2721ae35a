//! Resource quantities (`500m`, `1Gi`) with Go's parsing, canonical form and rounding.
//! (skeleton: owned by the validation helper)
