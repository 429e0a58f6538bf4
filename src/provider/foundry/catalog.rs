//! The Foundry Local catalog: its entries (both service generations'
//! shapes) and resolving an alias to the exact variant for a device.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Device, FoundryError};

/// One catalog variant. Record `id`, `device` and `execution_provider` with
/// every result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CatalogEntry {
    /// Exact variant id, e.g. `qwen2.5-0.5b-instruct-generic-cpu:4`; this is
    /// what load, unload and chat requests must use.
    pub id: String,
    /// Alias shared by the device variants, e.g. `qwen2.5-0.5b`. Derived from
    /// `id` when the service does not report one.
    pub alias: String,
    pub device: Device,
    /// E.g. `CPUExecutionProvider`; empty when the service does not say.
    pub execution_provider: String,
    pub file_size_mb: Option<f64>,
    pub license: Option<String>,
    /// E.g. `chat-completion`; empty when the service does not say.
    pub task: String,
}

/// Parses a catalog response of either generation: a bare array, `{models:
/// [...]}` or an OpenAI list `{data: [...]}`, with items carrying `name` or
/// `id`. Items without an id are skipped.
pub(crate) fn parse_catalog(body: &Value) -> Vec<CatalogEntry> {
    list_items(body)
        .iter()
        .filter_map(parse_catalog_entry)
        .collect()
}

pub(super) fn list_items(body: &Value) -> &[Value] {
    match body {
        Value::Array(items) => items,
        Value::Object(_) => ["data", "models", "value"]
            .iter()
            .find_map(|key| field(body, key).and_then(Value::as_array))
            .map_or(&[], Vec::as_slice),
        _ => &[],
    }
}

pub(super) fn parse_catalog_entry(item: &Value) -> Option<CatalogEntry> {
    let id = str_field(item, "id")
        .or_else(|| str_field(item, "name"))?
        .to_string();
    let runtime = field(item, "runtime");
    let device_text = runtime
        .and_then(|r| str_field(r, "deviceType"))
        .or_else(|| str_field(item, "deviceType"))
        .or_else(|| str_field(item, "device"));
    let device = match device_text {
        Some(text) => Device::parse(text),
        None => device_from_id(&id),
    };
    let execution_provider = runtime
        .and_then(|r| str_field(r, "executionProvider"))
        .or_else(|| str_field(item, "executionProvider"))
        .unwrap_or_default()
        .to_string();
    let alias = match str_field(item, "alias").filter(|a| !a.is_empty()) {
        Some(alias) => alias.to_string(),
        None => derive_alias(&id),
    };
    Some(CatalogEntry {
        alias,
        device,
        execution_provider,
        file_size_mb: field(item, "fileSizeMb").and_then(Value::as_f64),
        license: str_field(item, "license").map(str::to_string),
        task: str_field(item, "task").unwrap_or_default().to_string(),
        id,
    })
}

/// Case-insensitive object field lookup (the two generations and the docs
/// disagree on `Success` vs `success` and the like).
pub(super) fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    let map = value.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

pub(super) fn str_field<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    field(value, name).and_then(Value::as_str)
}

/// Splits `name:4` into (`name`, Some(4)).
pub fn split_version(id: &str) -> (&str, Option<u64>) {
    match id.rsplit_once(':') {
        Some((base, version)) if !base.is_empty() => match version.parse() {
            Ok(v) => (base, Some(v)),
            Err(_) => (id, None),
        },
        _ => (id, None),
    }
}

/// Whether two model ids name the same variant: equal ignoring case, and
/// the `:version` suffix is ignored when only one side carries it (the first
/// generation lists cached and loaded models without versions).
pub fn same_variant(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let (base_a, ver_a) = split_version(a);
    let (base_b, ver_b) = split_version(b);
    base_a.eq_ignore_ascii_case(base_b) && (ver_a.is_none() || ver_b.is_none())
}

/// Execution-provider words that sit between a model name and its device in
/// variant ids (`-generic-cpu`, `-cuda-gpu`, `-trt-rtx-gpu`, `-qnn-npu`).
pub(super) const EP_WORDS: &[&str] = &[
    "generic", "cuda", "trt", "rtx", "trtrtx", "tensorrt", "dml", "directml", "qnn", "openvino",
    "ov", "vitis", "vitisai", "webgpu", "migraphx", "rocm", "nv",
];

pub(super) fn device_from_id(id: &str) -> Device {
    let (base, _) = split_version(id);
    match base.rsplit('-').next() {
        Some(last) if matches!(last.to_ascii_lowercase().as_str(), "cpu" | "gpu" | "npu") => {
            Device::parse(last)
        }
        _ => Device::Other("unknown".to_string()),
    }
}

/// Best-effort alias for a catalog item that has none: the id without its
/// version and its `-<ep>-<device>` suffix. May differ from the official
/// alias (e.g. it keeps `-instruct`).
pub(super) fn derive_alias(id: &str) -> String {
    let (base, _) = split_version(id);
    let mut words: Vec<&str> = base.split('-').collect();
    if words
        .last()
        .is_some_and(|w| matches!(w.to_ascii_lowercase().as_str(), "cpu" | "gpu" | "npu"))
        && words.len() > 1
    {
        words.pop();
        while words.len() > 1
            && words
                .last()
                .is_some_and(|w| EP_WORDS.contains(&w.to_ascii_lowercase().as_str()))
        {
            words.pop();
        }
    }
    words.join("-")
}

// ---------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------

/// Picks the exact variant to run.
///
/// 1. An exact variant id wins (then the same id ignoring case, then the id
///    without `:version`, taking the highest version). If `device` is given
///    and differs, that is an error rather than a silent mislabel.
/// 2. Otherwise `id_or_alias` is an alias (case ignored): the variant for
///    `device`, or without a device the first of NPU, GPU, CPU, other (the
///    order the Foundry Local SDK used); catalog order breaks ties.
/// 3. Otherwise an error listing close aliases, or all of them.
pub fn resolve(
    catalog: &[CatalogEntry],
    id_or_alias: &str,
    device: Option<&Device>,
) -> Result<CatalogEntry, FoundryError> {
    let query = id_or_alias.trim();
    let by_id = catalog
        .iter()
        .find(|e| e.id == query)
        .or_else(|| catalog.iter().find(|e| e.id.eq_ignore_ascii_case(query)))
        .or_else(|| highest_version(catalog, query));
    if let Some(entry) = by_id {
        if let Some(requested) = device
            && *requested != entry.device
        {
            return Err(FoundryError::DeviceMismatch {
                id: entry.id.clone(),
                alias: entry.alias.clone(),
                actual: entry.device.clone(),
                requested: requested.clone(),
            });
        }
        return Ok(entry.clone());
    }

    let variants: Vec<&CatalogEntry> = catalog
        .iter()
        .filter(|e| e.alias.eq_ignore_ascii_case(query))
        .collect();
    if variants.is_empty() {
        return Err(FoundryError::UnknownModel {
            query: query.to_string(),
            suggestions: suggest(catalog, query),
            available: aliases(catalog),
        });
    }
    let chosen = match device {
        Some(requested) => variants
            .iter()
            .find(|e| e.device == *requested)
            .ok_or_else(|| FoundryError::NoVariantForDevice {
                alias: variants[0].alias.clone(),
                device: requested.clone(),
                available: variants.iter().map(|e| e.device.clone()).collect(),
            })?,
        None => variants
            .iter()
            .min_by_key(|e| e.device.preference())
            .ok_or_else(|| FoundryError::UnknownModel {
                query: query.to_string(),
                suggestions: Vec::new(),
                available: aliases(catalog),
            })?,
    };
    Ok((*chosen).clone())
}

pub(super) fn highest_version<'a>(
    catalog: &'a [CatalogEntry],
    query: &str,
) -> Option<&'a CatalogEntry> {
    if split_version(query).1.is_some() {
        return None;
    }
    catalog
        .iter()
        .filter(|e| split_version(&e.id).0.eq_ignore_ascii_case(query))
        .fold(None, |best: Option<&CatalogEntry>, e| match best {
            Some(b) if split_version(&b.id).1 >= split_version(&e.id).1 => Some(b),
            _ => Some(e),
        })
}

pub(super) fn aliases(catalog: &[CatalogEntry]) -> Vec<String> {
    catalog
        .iter()
        .map(|e| e.alias.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Up to five aliases or ids close to `query` (edit distance or containment).
pub(super) fn suggest(catalog: &[CatalogEntry], query: &str) -> Vec<String> {
    let q = query.to_ascii_lowercase();
    if q.is_empty() {
        return Vec::new();
    }
    let limit = (q.chars().count() / 4).max(2);
    let names: BTreeSet<&str> = catalog
        .iter()
        .flat_map(|e| [e.alias.as_str(), split_version(&e.id).0])
        .collect();
    let mut scored: Vec<(usize, &str)> = names
        .into_iter()
        .filter_map(|name| {
            let n = name.to_ascii_lowercase();
            let distance = edit_distance(&q, &n);
            let close = distance <= limit || n.contains(&q) || (q.contains(&n) && n.len() >= 3);
            close.then_some((distance, name))
        })
        .collect();
    scored.sort_unstable();
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_string())
        .collect()
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
