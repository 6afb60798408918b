//! An OCF agent's meta-data (the XML its `meta-data` action prints): its parameters, which
//! are required, their defaults, and its actions. A small scanner for the few elements the
//! OCF resource-agent API defines, rather than a general XML parser.

/// What `baton resource-type show` prints, and what create-time checks use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentMetadata {
    pub name: String,
    pub shortdesc: String,
    pub longdesc: String,
    pub parameters: Vec<ParameterInfo>,
    /// Action names (`start`, `stop`, `monitor`, ...).
    pub actions: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParameterInfo {
    pub name: String,
    pub required: bool,
    pub unique: bool,
    pub shortdesc: String,
    /// `string`, `integer`, `boolean`, ...
    pub content_type: String,
    pub default: Option<String>,
}

impl AgentMetadata {
    pub fn required(&self) -> impl Iterator<Item = &ParameterInfo> {
        self.parameters.iter().filter(|p| p.required)
    }

    pub fn parameter(&self, name: &str) -> Option<&ParameterInfo> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

/// Parses meta-data XML; the error says what is missing.
pub fn parse(xml: &str) -> Result<AgentMetadata, String> {
    let (agent_tag, _) = find_element(xml, "resource-agent")
        .ok_or("no <resource-agent> element: is this an OCF agent's meta-data?")?;
    let (before_params, params) = match xml.find("<parameters") {
        Some(index) => (&xml[..index], section(&xml[index..], "parameters")),
        None => (xml, ""),
    };
    let mut metadata = AgentMetadata {
        name: attribute(agent_tag, "name").unwrap_or_default(),
        shortdesc: text_of(before_params, "shortdesc").unwrap_or_default(),
        longdesc: text_of(before_params, "longdesc").unwrap_or_default(),
        ..AgentMetadata::default()
    };
    let mut rest = params;
    while let Some((tag, body, after)) = next_element(rest, "parameter") {
        metadata.parameters.push(parameter(tag, body)?);
        rest = after;
    }
    let mut rest = xml
        .find("<actions")
        .map_or("", |i| section(&xml[i..], "actions"));
    while let Some((tag, _, after)) = next_element(rest, "action") {
        if let Some(name) = attribute(tag, "name") {
            metadata.actions.push(name);
        }
        rest = after;
    }
    Ok(metadata)
}

fn parameter(tag: &str, body: &str) -> Result<ParameterInfo, String> {
    let name = attribute(tag, "name").ok_or("a <parameter> without a name")?;
    let content = find_element(body, "content").map(|(tag, _)| tag);
    Ok(ParameterInfo {
        required: attribute(tag, "required").is_some_and(|v| truthy(&v)),
        unique: attribute(tag, "unique").is_some_and(|v| truthy(&v)),
        shortdesc: text_of(body, "shortdesc").unwrap_or_default(),
        content_type: content
            .and_then(|tag| attribute(tag, "type"))
            .unwrap_or_else(|| "string".to_string()),
        default: content.and_then(|tag| attribute(tag, "default")),
        name,
    })
}

fn truthy(value: &str) -> bool {
    matches!(value, "1" | "true" | "yes")
}

/// The inside of `<name ...>...</name>` starting at `text`, or "" when unclosed.
fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let Some(open_end) = text.find('>') else {
        return "";
    };
    let close = format!("</{name}>");
    text[open_end + 1..]
        .find(&close)
        .map_or("", |end| &text[open_end + 1..open_end + 1 + end])
}

/// The first `<name ...>` in `text`: (its attributes text, its body, the text after it).
/// A self-closing element has an empty body.
fn next_element<'a>(text: &'a str, name: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let mut from = 0;
    loop {
        let start = from + text[from..].find(&format!("<{name}"))?;
        let after_name = start + 1 + name.len();
        // `<parameter` must not match `<parameters`.
        let next = text[after_name..].chars().next()?;
        if !(next.is_whitespace() || next == '>' || next == '/') {
            from = after_name;
            continue;
        }
        let tag_end = after_name + text[after_name..].find('>')?;
        let tag = &text[after_name..tag_end];
        if tag.ends_with('/') {
            return Some((tag.trim_end_matches('/'), "", &text[tag_end + 1..]));
        }
        let close = format!("</{name}>");
        let body_end = tag_end + 1 + text[tag_end + 1..].find(&close)?;
        let body = &text[tag_end + 1..body_end];
        return Some((tag, body, &text[body_end + close.len()..]));
    }
}

fn find_element<'a>(text: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    next_element(text, name).map(|(tag, body, _)| (tag, body))
}

/// The text of the first `<name>` element, whitespace collapsed, entities decoded.
fn text_of(text: &str, name: &str) -> Option<String> {
    let (_, body) = find_element(text, name)?;
    let words: Vec<&str> = body.split_whitespace().collect();
    Some(unescape(&words.join(" ")))
}

/// `key="value"` (or single quotes) from a start tag's attributes.
fn attribute(tag: &str, key: &str) -> Option<String> {
    let mut rest = tag;
    loop {
        let index = rest.find(key)?;
        let before = rest[..index].chars().last();
        let after = rest[index + key.len()..].trim_start();
        rest = &rest[index + key.len()..];
        if !before.is_none_or(char::is_whitespace) {
            continue;
        }
        let Some(after_eq) = after.strip_prefix('=') else {
            continue;
        };
        let after_eq = after_eq.trim_start();
        let quote = after_eq.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let value = &after_eq[1..];
        let end = value.find(quote)?;
        return Some(unescape(&value[..end]));
    }
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(index) = rest.find('&') {
        out.push_str(&rest[..index]);
        let tail = &rest[index..];
        let Some(end) = tail.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let entity = &tail[1..end];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix('#')
                .and_then(|n| match n.strip_prefix('x') {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => n.parse().ok(),
                })
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="IPaddr2" version="1.0">
<version>1.0</version>
<longdesc lang="en">Manages a
  virtual address.</longdesc>
<shortdesc lang="en">Manages virtual IPv4 &amp; IPv6 addresses</shortdesc>
<parameters>
<parameter name="ip" unique="1" required="1">
<longdesc lang="en">The address</longdesc>
<shortdesc lang="en">IPv4 or IPv6 address</shortdesc>
<content type="string" default="" />
</parameter>
<parameter name="cidr_netmask">
<shortdesc lang="en">CIDR netmask</shortdesc>
<content type="string" default="24"/>
</parameter>
</parameters>
<actions>
<action name="start" timeout="20s" />
<action name="monitor" depth="0" timeout="20s" interval="10s" />
</actions>
</resource-agent>"#;

    #[test]
    fn parameters_and_actions_are_read() {
        // Checks names, required flags, defaults, descriptions and entities.
        let metadata = parse(XML).unwrap();
        assert_eq!(metadata.name, "IPaddr2");
        assert_eq!(metadata.shortdesc, "Manages virtual IPv4 & IPv6 addresses");
        assert_eq!(metadata.longdesc, "Manages a virtual address.");
        let names: Vec<&str> = metadata
            .parameters
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["ip", "cidr_netmask"]);
        let ip = metadata.parameter("ip").unwrap();
        assert!(ip.required && ip.unique);
        assert_eq!(ip.shortdesc, "IPv4 or IPv6 address");
        let mask = metadata.parameter("cidr_netmask").unwrap();
        assert!(!mask.required);
        assert_eq!(mask.default.as_deref(), Some("24"));
        assert_eq!(metadata.actions, ["start", "monitor"]);
        assert_eq!(metadata.required().count(), 1);
    }

    #[test]
    fn not_meta_data_is_refused() {
        // Checks a usage text instead of XML gives a clear error.
        let error = parse("usage: Dummy {start|stop}").unwrap_err();
        assert!(error.contains("<resource-agent>"), "{error}");
    }
}
