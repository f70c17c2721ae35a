//! Decoding of Kubernetes' protobuf request bodies (`application/vnd.kubernetes.protobuf`) into Kubernetes JSON.
//!
//! kubectl 1.32 sends `kubectl create namespace|configmap|secret|serviceaccount|token` bodies as protobuf. This module
//! owns turning such a body into the same JSON object kube-apiserver's JSON encoding would give for it
//! (`apiVersion`/`kind` included), so the rest of the server only ever sees JSON.
//!
//! The body is the 4 magic bytes `k8s\0` followed by a `runtime.Unknown` message (typeMeta, raw, contentEncoding,
//! contentType); `raw` is the object as described by k8s.io/api's `generated.proto` files. Field numbers in the
//! schema tables below were checked against kubernetes/api `core/v1/generated.proto`,
//! `coordination/v1/generated.proto` and apimachinery `pkg/apis/meta/v1/generated.proto`, and whether a scalar is a
//! Go pointer (kept in JSON even when zero) against the `types.go` struct tags.
//!
//! Emptiness follows Go: kubectl's gogo-protobuf encoder writes every non-pointer field, empty or not, so empty
//! strings, zero numbers, `false`, empty lists and maps and zero times are dropped (what `omitempty` does in JSON);
//! pointer scalars are kept whenever present; nested messages are kept when present, as Go writes them.
//!
//! Security: the body is untrusted. The wire reader checks every length against the remaining input before slicing,
//! rejects varints longer than 10 bytes, wire-type mismatches and the deprecated group wire types, never indexes
//! without a bounds check and never panics. Memory is bounded by the input (each output value needs at least one
//! input byte, and the request body is already capped at `MAX_REQUEST_BYTES`). Recursion follows the static
//! schema tables, which are not recursive, and is additionally capped at [`MAX_DEPTH`]. Unknown fields are skipped
//! (as protobuf requires), unknown kinds are refused.

use base64::Engine as _;
use serde_json::{Map, Value};

/// The prefix of every Kubernetes protobuf body.
const MAGIC: &[u8; 4] = b"k8s\0";

/// How deep messages may nest (the schema tables themselves go less than 10 deep).
const MAX_DEPTH: usize = 32;

/// Decodes a Kubernetes protobuf body into the object's Kubernetes JSON.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| "protobuf body does not start with the k8s magic bytes".to_string())?;
    let (mut api_version, mut kind, mut raw, mut encoding, mut content_type) = ("", "", &[][..], "", "");
    let mut r = Reader::new(rest);
    while !r.is_empty() {
        match r.field()? {
            (1, Wire::Len(type_meta)) => {
                let mut t = Reader::new(type_meta);
                while !t.is_empty() {
                    match t.field()? {
                        (1, Wire::Len(b)) => api_version = str_field("apiVersion", b)?,
                        (2, Wire::Len(b)) => kind = str_field("kind", b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Len(b)) => raw = b,
            (3, Wire::Len(b)) => encoding = str_field("contentEncoding", b)?,
            (4, Wire::Len(b)) => content_type = str_field("contentType", b)?,
            (1..=4, _) => return Err("malformed runtime.Unknown envelope".into()),
            _ => {}
        }
    }
    if !encoding.is_empty() {
        return Err(format!("unsupported protobuf content encoding {encoding:?}"));
    }
    if !content_type.is_empty() && content_type != "application/vnd.kubernetes.protobuf" {
        return Err(format!("unsupported protobuf content type {content_type:?}"));
    }
    let schema =
        schema_for(api_version, kind).ok_or_else(|| format!("no protobuf decoding for {api_version}/{kind}"))?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(api_version.to_string()));
    obj.insert("kind".into(), Value::String(kind.to_string()));
    for (k, v) in decode_message(raw, schema, 0)? {
        obj.insert(k, v);
    }
    Ok(Value::Object(obj))
}

/// The object schema for a type, if this module knows it.
fn schema_for(api_version: &str, kind: &str) -> Option<Schema> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("v1", "Event") => EVENT,
        ("v1", "Node") => NODE,
        ("coordination.k8s.io/v1", "Lease") => LEASE,
        ("authentication.k8s.io/v1", "TokenRequest") => TOKEN_REQUEST,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Schema tables.

/// A message's fields.
type Schema = &'static [Field];

/// One field of a message: its protobuf number, JSON name, value type and cardinality.
#[derive(Clone, Copy)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    card: Card,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Card {
    /// A single value.
    One,
    /// A list (`repeated`); numbers may come packed or not.
    List,
    /// `map<string, ty>`: repeated entries {1: key, 2: value}.
    Map,
}

/// How a value is encoded on the wire and in JSON.
#[derive(Clone, Copy)]
enum Ty {
    /// `string`, dropped when empty.
    Str,
    /// `*string`, kept when present.
    OptStr,
    /// `[]byte`, base64 in JSON, dropped when empty.
    Bytes,
    /// `bool`, dropped when false.
    Bool,
    /// `*bool`.
    OptBool,
    /// `int32`, dropped when 0.
    I32,
    /// `*int32`.
    OptI32,
    /// `int64`, dropped when 0.
    I64,
    /// `*int64`.
    OptI64,
    /// meta/v1 Time: RFC 3339 in whole seconds; an empty message is the zero time and is dropped.
    Time,
    /// meta/v1 MicroTime: RFC 3339 with microseconds.
    MicroTime,
    /// resource.Quantity {1: string}, a JSON string.
    Quantity,
    /// meta/v1 FieldsV1 {1: raw JSON bytes}, the JSON value itself.
    FieldsV1,
    /// A nested message, kept when present.
    Msg(Schema),
}

const fn one(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        card: Card::One,
    }
}

const fn list(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        card: Card::List,
    }
}

const fn map(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        card: Card::Map,
    }
}

use Ty::*;

// meta/v1 generated.proto
const OBJECT_META: Schema = &[
    one(1, "name", Str),
    one(2, "generateName", Str),
    one(3, "namespace", Str),
    one(4, "selfLink", Str),
    one(5, "uid", Str),
    one(6, "resourceVersion", Str),
    one(7, "generation", I64),
    one(8, "creationTimestamp", Time),
    one(9, "deletionTimestamp", Time),
    one(10, "deletionGracePeriodSeconds", OptI64),
    map(11, "labels", Str),
    map(12, "annotations", Str),
    list(13, "ownerReferences", Msg(OWNER_REFERENCE)),
    list(14, "finalizers", Str),
    list(17, "managedFields", Msg(MANAGED_FIELDS_ENTRY)),
];
const OWNER_REFERENCE: Schema = &[
    one(5, "apiVersion", Str),
    one(1, "kind", Str),
    one(3, "name", Str),
    one(4, "uid", Str),
    one(6, "controller", OptBool),
    one(7, "blockOwnerDeletion", OptBool),
];
const MANAGED_FIELDS_ENTRY: Schema = &[
    one(1, "manager", Str),
    one(2, "operation", Str),
    one(3, "apiVersion", Str),
    one(4, "time", Time),
    one(6, "fieldsType", Str),
    one(7, "fieldsV1", FieldsV1),
    one(8, "subresource", Str),
];

// core/v1 generated.proto
const NAMESPACE: Schema = &[
    one(1, "metadata", Msg(OBJECT_META)),
    one(2, "spec", Msg(NAMESPACE_SPEC)),
    one(3, "status", Msg(NAMESPACE_STATUS)),
];
const NAMESPACE_SPEC: Schema = &[list(1, "finalizers", Str)];
const NAMESPACE_STATUS: Schema = &[one(1, "phase", Str), list(2, "conditions", Msg(NAMESPACE_CONDITION))];
const NAMESPACE_CONDITION: Schema = &[
    one(1, "type", Str),
    one(2, "status", Str),
    one(4, "lastTransitionTime", Time),
    one(5, "reason", Str),
    one(6, "message", Str),
];

const CONFIG_MAP: Schema = &[
    one(1, "metadata", Msg(OBJECT_META)),
    one(4, "immutable", OptBool),
    map(2, "data", Str),
    map(3, "binaryData", Bytes),
];

const SECRET: Schema = &[
    one(1, "metadata", Msg(OBJECT_META)),
    one(5, "immutable", OptBool),
    map(2, "data", Bytes),
    map(4, "stringData", Str),
    one(3, "type", Str),
];

const SERVICE_ACCOUNT: Schema = &[
    one(1, "metadata", Msg(OBJECT_META)),
    list(2, "secrets", Msg(OBJECT_REFERENCE)),
    list(3, "imagePullSecrets", Msg(LOCAL_OBJECT_REFERENCE)),
    one(4, "automountServiceAccountToken", OptBool),
];
const OBJECT_REFERENCE: Schema = &[
    one(1, "kind", Str),
    one(2, "namespace", Str),
    one(3, "name", Str),
    one(4, "uid", Str),
    one(5, "apiVersion", Str),
    one(6, "resourceVersion", Str),
    one(7, "fieldPath", Str),
];
const LOCAL_OBJECT_REFERENCE: Schema = &[one(1, "name", Str)];

const EVENT: Schema = &[
    one(1, "metadata", Msg(OBJECT_META)),
    one(2, "involvedObject", Msg(OBJECT_REFERENCE)),
    one(3, "reason", Str),
    one(4, "message", Str),
    one(5, "source", Msg(EVENT_SOURCE)),
    one(6, "firstTimestamp", Time),
    one(7, "lastTimestamp", Time),
    one(8, "count", I32),
    one(9, "type", Str),
    one(10, "eventTime", MicroTime),
    one(11, "series", Msg(EVENT_SERIES)),
    one(12, "action", Str),
    one(13, "related", Msg(OBJECT_REFERENCE)),
    one(14, "reportingComponent", Str),
    one(15, "reportingInstance", Str),
];
const EVENT_SOURCE: Schema = &[one(1, "component", Str), one(2, "host", Str)];
const EVENT_SERIES: Schema = &[one(1, "count", I32), one(2, "lastObservedTime", MicroTime)];

const NODE: Schema = &[
    one(1, "metadata", Msg(OBJECT_META)),
    one(2, "spec", Msg(NODE_SPEC)),
    one(3, "status", Msg(NODE_STATUS)),
];
const NODE_SPEC: Schema = &[
    one(1, "podCIDR", Str),
    list(7, "podCIDRs", Str),
    one(3, "providerID", Str),
    one(4, "unschedulable", Bool),
    list(5, "taints", Msg(TAINT)),
    one(6, "configSource", Msg(NODE_CONFIG_SOURCE)),
    one(2, "externalID", Str),
];
const TAINT: Schema = &[
    one(1, "key", Str),
    one(2, "value", Str),
    one(3, "effect", Str),
    one(4, "timeAdded", Time),
];
const NODE_CONFIG_SOURCE: Schema = &[one(2, "configMap", Msg(CONFIG_MAP_NODE_CONFIG_SOURCE))];
const CONFIG_MAP_NODE_CONFIG_SOURCE: Schema = &[
    one(1, "namespace", Str),
    one(2, "name", Str),
    one(3, "uid", Str),
    one(4, "resourceVersion", Str),
    one(5, "kubeletConfigKey", Str),
];
const NODE_STATUS: Schema = &[
    map(1, "capacity", Quantity),
    map(2, "allocatable", Quantity),
    one(3, "phase", Str),
    list(4, "conditions", Msg(NODE_CONDITION)),
    list(5, "addresses", Msg(NODE_ADDRESS)),
    one(6, "daemonEndpoints", Msg(NODE_DAEMON_ENDPOINTS)),
    one(7, "nodeInfo", Msg(NODE_SYSTEM_INFO)),
    list(8, "images", Msg(CONTAINER_IMAGE)),
    list(9, "volumesInUse", Str),
    list(10, "volumesAttached", Msg(ATTACHED_VOLUME)),
    one(11, "config", Msg(NODE_CONFIG_STATUS)),
    list(12, "runtimeHandlers", Msg(NODE_RUNTIME_HANDLER)),
    one(13, "features", Msg(NODE_FEATURES)),
];
const NODE_CONDITION: Schema = &[
    one(1, "type", Str),
    one(2, "status", Str),
    one(3, "lastHeartbeatTime", Time),
    one(4, "lastTransitionTime", Time),
    one(5, "reason", Str),
    one(6, "message", Str),
];
const NODE_ADDRESS: Schema = &[one(1, "type", Str), one(2, "address", Str)];
const NODE_DAEMON_ENDPOINTS: Schema = &[one(1, "kubeletEndpoint", Msg(DAEMON_ENDPOINT))];
const DAEMON_ENDPOINT: Schema = &[one(1, "Port", I32)];
const NODE_SYSTEM_INFO: Schema = &[
    one(1, "machineID", Str),
    one(2, "systemUUID", Str),
    one(3, "bootID", Str),
    one(4, "kernelVersion", Str),
    one(5, "osImage", Str),
    one(6, "containerRuntimeVersion", Str),
    one(7, "kubeletVersion", Str),
    one(8, "kubeProxyVersion", Str),
    one(9, "operatingSystem", Str),
    one(10, "architecture", Str),
    one(11, "swap", Msg(NODE_SWAP_STATUS)),
];
const NODE_SWAP_STATUS: Schema = &[one(1, "capacity", OptI64)];
const CONTAINER_IMAGE: Schema = &[list(1, "names", Str), one(2, "sizeBytes", I64)];
const ATTACHED_VOLUME: Schema = &[one(1, "name", Str), one(2, "devicePath", Str)];
const NODE_CONFIG_STATUS: Schema = &[
    one(1, "assigned", Msg(NODE_CONFIG_SOURCE)),
    one(2, "active", Msg(NODE_CONFIG_SOURCE)),
    one(3, "lastKnownGood", Msg(NODE_CONFIG_SOURCE)),
    one(4, "error", Str),
];
const NODE_RUNTIME_HANDLER: Schema = &[
    one(1, "name", Str),
    one(2, "features", Msg(NODE_RUNTIME_HANDLER_FEATURES)),
];
const NODE_RUNTIME_HANDLER_FEATURES: Schema = &[
    one(1, "recursiveReadOnlyMounts", OptBool),
    one(2, "userNamespaces", OptBool),
];
const NODE_FEATURES: Schema = &[one(1, "supplementalGroupsPolicy", OptBool)];

// coordination/v1 generated.proto
// authentication/v1 generated.proto (`kubectl create token` sends this).
const TOKEN_REQUEST: Schema = &[
    one(1, "metadata", Msg(OBJECT_META)),
    one(2, "spec", Msg(TOKEN_REQUEST_SPEC)),
];
const TOKEN_REQUEST_SPEC: Schema = &[
    list(1, "audiences", Str),
    one(4, "expirationSeconds", OptI64),
    one(3, "boundObjectRef", Msg(BOUND_OBJECT_REFERENCE)),
];
const BOUND_OBJECT_REFERENCE: Schema = &[
    one(1, "kind", Str),
    one(2, "apiVersion", Str),
    one(3, "name", Str),
    one(4, "uid", Str),
];

const LEASE: Schema = &[one(1, "metadata", Msg(OBJECT_META)), one(2, "spec", Msg(LEASE_SPEC))];
const LEASE_SPEC: Schema = &[
    one(1, "holderIdentity", OptStr),
    one(2, "leaseDurationSeconds", OptI32),
    one(3, "acquireTime", MicroTime),
    one(4, "renewTime", MicroTime),
    one(5, "leaseTransitions", OptI32),
    one(6, "strategy", OptStr),
    one(7, "preferredHolder", OptStr),
];

// ---------------------------------------------------------------------------------------------------------------
// Wire reader.

/// Protobuf wire types (groups, 3 and 4, are refused).
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// One field read off the wire.
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    /// 32- and 64-bit fields: no Kubernetes type in the tables uses them, so they are only skipped.
    Fixed,
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value: u64 = 0;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            let bits = u64::from(b & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                self.buf = self.buf.get(i + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err("truncated or overlong varint".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!("field length {n} exceeds the {} bytes left", self.buf.len()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Reads one field: its number and value.
    fn field(&mut self) -> Result<(u64, Wire<'a>), String> {
        let key = self.varint()?;
        let num = key >> 3;
        if num == 0 {
            return Err("field number 0".into());
        }
        let wire = match key & 7 {
            VARINT => Wire::Varint(self.varint()?),
            FIXED64 => {
                self.take(8)?;
                Wire::Fixed
            }
            LEN => {
                let n = usize::try_from(self.varint()?).map_err(|_| "field length too large".to_string())?;
                Wire::Len(self.take(n)?)
            }
            FIXED32 => {
                self.take(4)?;
                Wire::Fixed
            }
            other => return Err(format!("unsupported wire type {other} for field {num}")),
        };
        Ok((num, wire))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding by schema.

/// Decodes one message into a JSON map, dropping empty values the way Go's `omitempty` does.
fn decode_message(buf: &[u8], schema: Schema, depth: usize) -> Result<Map<String, Value>, String> {
    if depth > MAX_DEPTH {
        return Err("protobuf messages nest too deeply".into());
    }
    let mut out = Map::new();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wire) = r.field()?;
        let Some(f) = schema.iter().find(|f| f.num == num) else {
            continue;
        };
        match f.card {
            Card::One => match decode_value(f, f.ty, wire, depth)? {
                Some(v) => {
                    out.insert(f.name.to_string(), v);
                }
                None => {
                    out.remove(f.name);
                }
            },
            Card::List => {
                let items = decode_list_items(f, wire, depth)?;
                let slot = out.entry(f.name).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = slot {
                    a.extend(items);
                }
            }
            Card::Map => {
                let Wire::Len(entry) = wire else {
                    return Err(format!("{}: map entry is not length-delimited", f.name));
                };
                let (k, v) = decode_map_entry(f, entry, depth)?;
                let slot = out.entry(f.name).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = slot {
                    m.insert(k, v);
                }
            }
        }
    }
    Ok(out)
}

/// The elements one wire field of a repeated field carries (several when numbers are packed).
fn decode_list_items(f: &Field, wire: Wire<'_>, depth: usize) -> Result<Vec<Value>, String> {
    let packable = matches!(f.ty, Bool | OptBool | I32 | OptI32 | I64 | OptI64);
    match wire {
        Wire::Len(bytes) if packable => {
            let mut r = Reader::new(bytes);
            let mut items = Vec::new();
            while !r.is_empty() {
                items.push(scalar(f, f.ty, r.varint()?, true)?);
            }
            Ok(items)
        }
        // List elements are kept even when empty ("" in a list of strings is a real element).
        wire => Ok(vec![decode_element(f, wire, depth)?]),
    }
}

/// A list element or map value: like a single value but never dropped for being empty.
fn decode_element(f: &Field, wire: Wire<'_>, depth: usize) -> Result<Value, String> {
    match (f.ty, wire) {
        (Str | OptStr, Wire::Len(b)) => Ok(Value::String(utf8(f, b)?)),
        (Bytes, Wire::Len(b)) => Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(b))),
        (Msg(schema), Wire::Len(b)) => Ok(Value::Object(decode_message(b, schema, depth + 1)?)),
        (ty, Wire::Varint(v)) => scalar(f, ty, v, true),
        (ty, wire) => Ok(decode_value(f, ty, wire, depth)?.unwrap_or(Value::Null)),
    }
}

/// A map entry {1: key, 2: value}; a missing part is its type's zero value.
fn decode_map_entry(f: &Field, entry: &[u8], depth: usize) -> Result<(String, Value), String> {
    let mut key = String::new();
    let mut value = None;
    let mut r = Reader::new(entry);
    while !r.is_empty() {
        match r.field()? {
            (1, Wire::Len(b)) => key = utf8(f, b)?,
            (1, _) => return Err(format!("{}: map key is not a string", f.name)),
            (2, wire) => value = Some(decode_element(f, wire, depth)?),
            _ => {}
        }
    }
    let value = match value {
        Some(v) => v,
        None => match f.ty {
            Str | OptStr | Bytes | Quantity => Value::String(String::new()),
            Msg(_) => Value::Object(Map::new()),
            _ => Value::Null,
        },
    };
    Ok((key, value))
}

/// A single (not repeated) value; `None` when Go would leave it out of its JSON.
fn decode_value(f: &Field, ty: Ty, wire: Wire<'_>, depth: usize) -> Result<Option<Value>, String> {
    let bytes = match wire {
        Wire::Varint(v) => {
            let value = scalar(f, ty, v, false)?;
            return Ok((!value.is_null()).then_some(value));
        }
        Wire::Fixed => return Err(format!("{}: unexpected fixed-width value", f.name)),
        Wire::Len(b) => b,
    };
    Ok(match ty {
        Str => (!bytes.is_empty())
            .then(|| utf8(f, bytes))
            .transpose()?
            .map(Value::String),
        OptStr => Some(Value::String(utf8(f, bytes)?)),
        Bytes => (!bytes.is_empty()).then(|| Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))),
        Msg(schema) => Some(Value::Object(decode_message(bytes, schema, depth + 1)?)),
        Time | MicroTime => decode_time(f, bytes, matches!(ty, MicroTime))?,
        Quantity => {
            let m = decode_message(bytes, QUANTITY, depth + 1)?;
            Some(m.get("string").cloned().unwrap_or_else(|| Value::String(String::new())))
        }
        FieldsV1 => {
            let m = decode_message(bytes, FIELDS_V1, depth + 1)?;
            match m.get("Raw").and_then(Value::as_str) {
                Some(b64) => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| format!("{}: {e}", f.name))?;
                    Some(serde_json::from_slice(&raw).map_err(|e| format!("{}: {e}", f.name))?)
                }
                None => None,
            }
        }
        Bool | OptBool | I32 | OptI32 | I64 | OptI64 => {
            return Err(format!("{}: number sent length-delimited", f.name));
        }
    })
}

const QUANTITY: Schema = &[one(1, "string", OptStr)];
const FIELDS_V1: Schema = &[one(1, "Raw", Bytes)];
const TIMESTAMP: Schema = &[one(1, "seconds", OptI64), one(2, "nanos", OptI32)];

/// A varint-encoded scalar; `Value::Null` for a zero value Go would omit (unless `keep_zero`).
fn scalar(f: &Field, ty: Ty, v: u64, keep_zero: bool) -> Result<Value, String> {
    // int32 and int64 are two's complement, negative int32s sign-extended to 64 bits; the truncation is the
    // protobuf-specified conversion.
    let value = match ty {
        Bool | OptBool => Value::Bool(v != 0),
        I32 | OptI32 => Value::from(v as i64 as i32),
        I64 | OptI64 => Value::from(v as i64),
        _ => return Err(format!("{}: unexpected varint", f.name)),
    };
    let zero = v == 0 || (matches!(ty, I32 | OptI32) && v as i64 as i32 == 0);
    let pointer = matches!(ty, OptBool | OptI32 | OptI64);
    Ok(if zero && !pointer && !keep_zero {
        Value::Null
    } else {
        value
    })
}

/// meta/v1 Time or MicroTime {1: seconds, 2: nanos}. Go reads an empty message as the zero time (dropped) and
/// keeps only whole seconds of a Time.
fn decode_time(f: &Field, bytes: &[u8], micro: bool) -> Result<Option<Value>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let m = decode_message(bytes, TIMESTAMP, 0)?;
    let seconds = m.get("seconds").and_then(Value::as_i64).unwrap_or(0);
    let nanos = m.get("nanos").and_then(Value::as_i64).unwrap_or(0);
    let ts = jiff::Timestamp::new(seconds, 0).map_err(|e| format!("{}: {e}", f.name))?;
    let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(Some(Value::String(if micro {
        if !(0..1_000_000_000).contains(&nanos) {
            return Err(format!("{}: nanos {nanos} out of range", f.name));
        }
        format!("{base}.{:06}Z", nanos / 1000)
    } else {
        format!("{base}Z")
    })))
}

fn utf8(f: &Field, b: &[u8]) -> Result<String, String> {
    str_field(f.name, b).map(str::to_string)
}

fn str_field<'a>(name: &str, b: &'a [u8]) -> Result<&'a str, String> {
    std::str::from_utf8(b).map_err(|_| format!("{name}: string is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Bodies kubectl 1.32.4 sent (captured with -v=9 against Peapod).
    const KUBECTL_NAMESPACE: &[u8] =
        b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x19\x0a\x11\x0a\x01x\x12\x00\x1a\x00\
\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x00\x1a\x02\x0a\x00\x1a\x00\x22\x00";
    const KUBECTL_CONFIGMAP: &[u8] = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x1d\x0a\x13\x0a\x03cfg\x12\x00\
\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x06\x0a\x01a\x12\x01b\x1a\x00\x22\x00";
    const KUBECTL_SECRET: &[u8] = b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret\x12\x1d\x0a\x11\x0a\x01s\x12\x00\x1a\x00\
\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x06\x0a\x01a\x12\x01b\x1a\x00\x1a\x00\x22\x00";
    const KUBECTL_SERVICE_ACCOUNT: &[u8] =
        b"k8s\x00\x0a\x14\x0a\x02v1\x12\x0eServiceAccount\x12\x15\x0a\x13\x0a\x03sa1\
\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x1a\x00\x22\x00";

    /// A tiny protobuf encoder for building test messages.
    #[derive(Default, Clone)]
    struct Enc(Vec<u8>);

    impl Enc {
        fn varint(mut self, mut v: u64) -> Self {
            loop {
                let b = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    self.0.push(b);
                    return self;
                }
                self.0.push(b | 0x80);
            }
        }
        fn key(self, num: u64, wire: u64) -> Self {
            self.varint(num << 3 | wire)
        }
        fn uint(self, num: u64, v: u64) -> Self {
            self.key(num, 0).varint(v)
        }
        fn int(self, num: u64, v: i64) -> Self {
            self.uint(num, v as u64)
        }
        fn bytes(self, num: u64, b: &[u8]) -> Self {
            let mut e = self.key(num, 2).varint(b.len() as u64);
            e.0.extend_from_slice(b);
            e
        }
        fn str(self, num: u64, s: &str) -> Self {
            self.bytes(num, s.as_bytes())
        }
        fn msg(self, num: u64, m: Enc) -> Self {
            self.bytes(num, &m.0)
        }
        fn entry(self, num: u64, k: &str, v: &[u8]) -> Self {
            self.msg(num, Enc::default().str(1, k).bytes(2, v))
        }
        fn fixed32(self, num: u64) -> Self {
            let mut e = self.key(num, 5);
            e.0.extend_from_slice(&[1, 2, 3, 4]);
            e
        }
        fn fixed64(self, num: u64) -> Self {
            let mut e = self.key(num, 1);
            e.0.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
            e
        }
    }

    fn e() -> Enc {
        Enc::default()
    }

    fn envelope(api_version: &str, kind: &str, raw: Enc) -> Vec<u8> {
        let unknown = e()
            .msg(1, e().str(1, api_version).str(2, kind))
            .msg(2, raw)
            .str(3, "")
            .str(4, "");
        [b"k8s\0".as_slice(), &unknown.0].concat()
    }

    /// ObjectMeta as Go's encoder writes it: every non-pointer field, empty or not.
    fn go_meta(name: &str, namespace: &str) -> Enc {
        e().str(1, name)
            .str(2, "")
            .str(3, namespace)
            .str(4, "")
            .str(5, "")
            .str(6, "")
            .uint(7, 0)
            .msg(8, e())
    }

    #[test]
    fn kubectl_namespace() {
        assert_eq!(
            decode(KUBECTL_NAMESPACE).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spec": {}, "status": {}})
        );
    }

    #[test]
    fn kubectl_configmap() {
        assert_eq!(
            decode(KUBECTL_CONFIGMAP).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn kubectl_secret() {
        assert_eq!(
            decode(KUBECTL_SECRET).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "Yg=="}})
        );
    }

    #[test]
    fn kubectl_service_account() {
        assert_eq!(
            decode(KUBECTL_SERVICE_ACCOUNT).unwrap(),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa1"}})
        );
    }

    #[test]
    fn namespace_full_metadata() {
        let meta = go_meta("team-a", "")
            .str(5, "6f1c")
            .str(6, "42")
            .uint(7, 3)
            .msg(8, e().int(1, 1_700_000_000).int(2, 123))
            .msg(9, e().int(1, 0))
            .int(10, 0)
            .entry(11, "app", b"web")
            .entry(11, "tier", b"")
            .entry(12, "note", b"hi")
            .msg(
                13,
                e().str(5, "apps/v1")
                    .str(1, "Deployment")
                    .str(3, "d")
                    .str(4, "u1")
                    .uint(6, 1)
                    .uint(7, 0),
            )
            .str(14, "example.com/f")
            .str(14, "")
            .msg(
                17,
                e().str(1, "kubectl")
                    .str(2, "Update")
                    .str(3, "v1")
                    .msg(4, e().int(1, 60))
                    .str(6, "FieldsV1")
                    .msg(7, e().bytes(1, br#"{"f:data":{}}"#)),
            );
        let raw = e()
            .msg(1, meta)
            .msg(2, e().str(1, "kubernetes"))
            .msg(3, e().str(1, "Active"));
        assert_eq!(
            decode(&envelope("v1", "Namespace", raw)).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": "team-a",
                    "uid": "6f1c",
                    "resourceVersion": "42",
                    "generation": 3,
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "deletionTimestamp": "1970-01-01T00:00:00Z",
                    "deletionGracePeriodSeconds": 0,
                    "labels": {"app": "web", "tier": ""},
                    "annotations": {"note": "hi"},
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u1",
                        "controller": true, "blockOwnerDeletion": false
                    }],
                    "finalizers": ["example.com/f", ""],
                    "managedFields": [{
                        "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                        "time": "1970-01-01T00:01:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}
                    }]
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}
            })
        );
    }

    #[test]
    fn configmap_all_fields() {
        let raw = e()
            .msg(1, go_meta("cfg", "team-a"))
            .entry(2, "a", b"b")
            .entry(2, "empty", b"")
            .entry(3, "bin", &[0, 255, 1])
            .uint(4, 0);
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", raw)).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cfg", "namespace": "team-a"},
                "data": {"a": "b", "empty": ""},
                "binaryData": {"bin": "AP8B"},
                "immutable": false
            })
        );
    }

    #[test]
    fn secret_all_fields() {
        let raw = e()
            .msg(1, go_meta("s", "default"))
            .entry(2, "k", &[0xde, 0xad, 0xbe, 0xef])
            .entry(4, "plain", b"text")
            .str(3, "kubernetes.io/tls")
            .uint(5, 1);
        assert_eq!(
            decode(&envelope("v1", "Secret", raw)).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "namespace": "default"},
                "data": {"k": "3q2+7w=="},
                "stringData": {"plain": "text"},
                "type": "kubernetes.io/tls",
                "immutable": true
            })
        );
    }

    #[test]
    fn service_account_all_fields() {
        let raw = e()
            .msg(1, go_meta("sa1", ""))
            .msg(2, e().str(1, "Secret").str(3, "tok").str(2, ""))
            .msg(3, e().str(1, "regcred"))
            .uint(4, 0);
        assert_eq!(
            decode(&envelope("v1", "ServiceAccount", raw)).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "sa1"},
                "secrets": [{"kind": "Secret", "name": "tok"}],
                "imagePullSecrets": [{"name": "regcred"}],
                "automountServiceAccountToken": false
            })
        );
    }

    #[test]
    fn event() {
        let raw = e()
            .msg(1, go_meta("pod.1", "default"))
            .msg(2, e().str(1, "Pod").str(2, "default").str(3, "pod").str(7, ""))
            .str(3, "Scheduled")
            .str(4, "assigned")
            .msg(5, e().str(1, "scheduler").str(2, ""))
            .msg(6, e().int(1, 86_400))
            .msg(7, e())
            .int(8, 2)
            .str(9, "Normal")
            .msg(10, e().int(1, 86_400).int(2, 123_456_789))
            .msg(11, e().int(1, -1).msg(2, e().int(1, 1)))
            .str(12, "Binding")
            .str(14, "default-scheduler")
            .str(15, "");
        assert_eq!(
            decode(&envelope("v1", "Event", raw)).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "pod.1", "namespace": "default"},
                "involvedObject": {"kind": "Pod", "namespace": "default", "name": "pod"},
                "reason": "Scheduled",
                "message": "assigned",
                "source": {"component": "scheduler"},
                "firstTimestamp": "1970-01-02T00:00:00Z",
                "count": 2,
                "type": "Normal",
                "eventTime": "1970-01-02T00:00:00.123456Z",
                "series": {"count": -1, "lastObservedTime": "1970-01-01T00:00:01.000000Z"},
                "action": "Binding",
                "reportingComponent": "default-scheduler"
            })
        );
    }

    #[test]
    fn node() {
        let raw = e()
            .msg(1, go_meta("n1", ""))
            .msg(
                2,
                e().str(1, "10.0.0.0/24")
                    .str(7, "10.0.0.0/24")
                    .uint(4, 1)
                    .msg(5, e().str(1, "k").str(2, "").str(3, "NoSchedule").msg(4, e().int(1, 1))),
            )
            .msg(
                3,
                e().msg(1, e().str(1, "cpu").msg(2, e().str(1, "4")))
                    .msg(2, e().str(1, "memory").msg(2, e().str(1, "8Gi")))
                    .msg(
                        4,
                        e().str(1, "Ready")
                            .str(2, "True")
                            .msg(3, e().int(1, 2))
                            .msg(4, e())
                            .str(5, "KubeletReady"),
                    )
                    .msg(5, e().str(1, "InternalIP").str(2, "10.0.0.5"))
                    .msg(6, e().msg(1, e().int(1, 10250)))
                    .msg(
                        7,
                        e().str(1, "m").str(9, "linux").str(10, "amd64").msg(11, e().int(1, 0)),
                    )
                    .msg(8, e().str(1, "busybox:1").str(1, "busybox@sha").int(2, 4096))
                    .msg(12, e().str(1, "runc").msg(2, e().uint(1, 1)))
                    .msg(13, e().uint(1, 0)),
            );
        assert_eq!(
            decode(&envelope("v1", "Node", raw)).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n1"},
                "spec": {
                    "podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24"], "unschedulable": true,
                    "taints": [{"key": "k", "effect": "NoSchedule", "timeAdded": "1970-01-01T00:00:01Z"}]
                },
                "status": {
                    "capacity": {"cpu": "4"},
                    "allocatable": {"memory": "8Gi"},
                    "conditions": [{
                        "type": "Ready", "status": "True", "lastHeartbeatTime": "1970-01-01T00:00:02Z",
                        "reason": "KubeletReady"
                    }],
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                    "nodeInfo": {"machineID": "m", "operatingSystem": "linux", "architecture": "amd64",
                                 "swap": {"capacity": 0}},
                    "images": [{"names": ["busybox:1", "busybox@sha"], "sizeBytes": 4096}],
                    "runtimeHandlers": [{"name": "runc", "features": {"recursiveReadOnlyMounts": true}}],
                    "features": {"supplementalGroupsPolicy": false}
                }
            })
        );
    }

    #[test]
    fn lease() {
        let raw = e().msg(1, go_meta("node-1", "kube-node-lease")).msg(
            2,
            e().str(1, "")
                .int(2, 40)
                .msg(4, e().int(1, 1_700_000_000).int(2, 5_000))
                .int(5, 0),
        );
        assert_eq!(
            decode(&envelope("coordination.k8s.io/v1", "Lease", raw)).unwrap(),
            json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
                "spec": {
                    "holderIdentity": "", "leaseDurationSeconds": 40,
                    "renewTime": "2023-11-14T22:13:20.000005Z", "leaseTransitions": 0
                }
            })
        );
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let raw = e()
            .msg(
                1,
                go_meta("cfg", "").str(99, "x").fixed32(100).fixed64(101).uint(102, 7),
            )
            .str(50, "future")
            .fixed64(51)
            .entry(2, "a", b"b");
        let mut body = envelope("v1", "ConfigMap", raw);
        body.extend(e().str(9, "envelope extension").0);
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn packed_and_unpacked_lists() {
        // No table field is a repeated number today; check the packed path on a synthetic schema.
        const S: Schema = &[list(1, "xs", I64)];
        let body = e().bytes(1, &e().varint(1).varint(0).varint(u64::MAX).0).uint(1, 5);
        let m = decode_message(&body.0, S, 0).unwrap();
        assert_eq!(Value::Object(m), json!({"xs": [1, 0, -1, 5]}));
    }

    #[test]
    fn unknown_kind_is_refused() {
        let err = decode(&envelope("apps/v1", "Deployment", e())).unwrap_err();
        assert_eq!(err, "no protobuf decoding for apps/v1/Deployment");
        let err = decode(b"k8s\0").unwrap_err();
        assert_eq!(err, "no protobuf decoding for /");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(decode(b"").is_err());
        assert!(decode(b"{\"kind\":\"Namespace\"}").is_err());
        // Truncated varint, length past the end, overlong varint, group wire type, field number 0.
        assert!(decode(b"k8s\0\x0a").is_err());
        assert!(decode(b"k8s\0\x0a\x7f\x0a").is_err());
        assert!(decode(b"k8s\0\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f").is_err());
        assert!(decode(b"k8s\0\x0b").is_err());
        assert!(decode(b"k8s\0\x00\x00").is_err());
        // A length that does not fit in memory.
        assert!(decode(b"k8s\0\x12\xff\xff\xff\xff\xff\xff\xff\xff\x7f").is_err());
        // Not UTF-8, a wire type that does not fit the field, a compressed body.
        assert!(decode(&envelope("v1", "ConfigMap", e().msg(1, e().bytes(1, &[0xff])))).is_err());
        assert!(decode(&envelope("v1", "ConfigMap", e().uint(1, 3))).is_err());
        assert!(decode(&envelope("v1", "ConfigMap", e().msg(1, e().str(7, "x")))).is_err());
        let gz = [
            b"k8s\0".as_slice(),
            &e().msg(1, e().str(1, "v1").str(2, "ConfigMap")).str(3, "gzip").0,
        ]
        .concat();
        assert!(decode(&gz).unwrap_err().contains("content encoding"));
        // A time out of range.
        let t = envelope("v1", "ConfigMap", e().msg(1, e().msg(8, e().int(1, i64::MAX))));
        assert!(decode(&t).is_err());
    }

    #[test]
    fn max_varint_is_accepted() {
        let body = e().uint(1, u64::MAX);
        let mut r = Reader::new(&body.0);
        let (num, wire) = r.field().unwrap();
        assert_eq!(num, 1);
        assert!(matches!(wire, Wire::Varint(u64::MAX)));
    }

    #[test]
    fn no_panics_on_arbitrary_bytes() {
        // Every prefix and every single-byte corruption of real bodies, plus pseudo-random bytes.
        for body in [
            KUBECTL_NAMESPACE,
            KUBECTL_CONFIGMAP,
            KUBECTL_SECRET,
            KUBECTL_SERVICE_ACCOUNT,
        ] {
            for n in 0..body.len() {
                let _ = decode(&body[..n]);
                for b in [0x00, 0x01, 0x02, 0x05, 0x0a, 0x7f, 0x80, 0xff] {
                    let mut v = body.to_vec();
                    v[n] = b;
                    let _ = decode(&v);
                }
            }
        }
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut v = b"k8s\0".to_vec();
            v.extend(e().msg(1, e().str(1, "v1").str(2, "Node")).0);
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 64) as usize;
            let mut raw = Vec::with_capacity(len);
            for i in 0..len {
                raw.push((state >> (i % 8 * 8)) as u8 ^ i as u8);
            }
            v.extend(e().bytes(2, &raw).0);
            let _ = decode(&v);
        }
    }
}
