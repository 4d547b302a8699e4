//! Python-looking reprs: strings quoted and escaped as Python does, `True` / `None`, and
//! (through serde_json) floats in their shortest round-trip form.

/// `repr(s)` of a Python `str`.
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

pub fn bool_repr(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

/// `[0.1, 0.5, 0.9]`: each float in its shortest round-trip form.
pub fn float_list_repr(values: &[f32]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", items.join(", "))
}

/// `Name(key=value, ...)` of a builder's saved options, in Python syntax; unset
/// options (JSON null) are left out.
pub fn options_repr(name: &str, json: &str) -> String {
    let fields = match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(map)) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}={}", value_repr(v)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    };
    format!("{name}({fields})")
}

fn value_repr(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "None".into(),
        serde_json::Value::Bool(b) => bool_repr(*b).into(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => str_repr(s),
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items.iter().map(value_repr).collect::<Vec<_>>().join(", ")
        ),
        serde_json::Value::Object(_) => value.to_string(),
    }
}

/// A device as the string `Device.parse` takes, quoted: `'cpu'`, `'cuda:0'`, `'metal'`.
pub fn device_repr(device: &candle_core::Device) -> String {
    let name = match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { .. } => "metal".to_string(),
    };
    str_repr(&name)
}

/// Text made safe inside HTML.
pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The `_repr_html_` of an output object in a notebook: its class and a two-column table.
pub fn html_card(title: &str, rows: &[(&str, String)]) -> String {
    let body: String = rows
        .iter()
        .map(|(key, value)| {
            format!(
                "<tr><th style=\"text-align:left\">{}</th><td style=\"text-align:left\">{}</td></tr>",
                html_escape(key),
                html_escape(value)
            )
        })
        .collect();
    format!(
        "<div><strong>{}</strong><table>{body}</table></div>",
        html_escape(title)
    )
}
