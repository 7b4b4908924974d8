//! A container image reference, parsed once: validation, the catalog, pulls and the offline
//! bundle all read it the same way instead of splitting on `:`, `/` and `@` each in their own.
use super::validate::is_hostname;
use std::fmt;
use std::str::FromStr;

/// `[registry/]repository[:tag][@algorithm:hex]`, read the way the containers/image library reads
/// it. Nothing is normalised (no `docker.io/` or `:latest` added), so [`fmt::Display`] gives back
/// exactly the text that was parsed: units and podman see the reference the operator wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: Option<String>,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// `host[:port]`, when the reference names one.
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// The path inside the registry: `omnileads/omlapp`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// `algorithm:hex`.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What pins the image: the digest when there is one (podman ignores the tag then), else the
    /// tag, else `latest`, which is what podman pulls for a bare name.
    pub fn version(&self) -> &str {
        self.digest().or(self.tag()).unwrap_or("latest")
    }
}

impl FromStr for ImageRef {
    /// Says what is wrong without repeating the reference: callers name the key or file it came from.
    type Err = String;

    fn from_str(r: &str) -> Result<ImageRef, String> {
        if r.is_empty() || r.len() > 255 * 2 {
            return Err("empty or too long".into());
        }
        let (name_tag, digest) = match r.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (r, None),
        };
        if let Some(d) = digest {
            let (algo, hex) = d.split_once(':').ok_or("digest must be algorithm:hex")?;
            if algo.is_empty() || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err("malformed digest".into());
            }
        }
        // A colon after the last slash starts the tag; one before it is a registry's port.
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if !name_tag[i..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
            _ => (name_tag, None),
        };
        if let Some(t) = tag {
            check_tag(t)?;
        }
        // Only a first component that looks like a host is a registry: `omnileads/omlapp` is a
        // path on the default registry, `localhost:5000/omlapp` is not.
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                check_registry(first)?;
                (Some(first), rest)
            }
            _ => (None, name),
        };
        repository.split('/').try_for_each(check_component)?;
        Ok(ImageRef {
            registry: registry.map(str::to_string),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = &self.registry {
            write!(f, "{r}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn check_tag(t: &str) -> Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid tag {t:?}"))
    }
}

fn check_registry(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    if !is_hostname(host, 1) || port.is_some_and(|p| p.parse::<u16>().map_or(true, |n| n == 0)) {
        return Err(format!("invalid registry {domain:?}"));
    }
    Ok(())
}

fn check_component(c: &str) -> Result<(), String> {
    let ok = !c.is_empty()
        && c.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
        && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        && c.ends_with(|ch: char| ch.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid repository component {c:?} (lower-case letters, digits, . _ -)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parts() {
        let r: ImageRef =
            "registry.example.com:5000/a/b/c:1.0@sha256:0123456789abcdef0123456789abcdef"
                .parse()
                .unwrap();
        assert_eq!(r.registry(), Some("registry.example.com:5000"));
        assert_eq!(r.repository(), "a/b/c");
        assert_eq!(r.tag(), Some("1.0"));
        assert_eq!(r.digest(), Some("sha256:0123456789abcdef0123456789abcdef"));
        assert_eq!(r.version(), "sha256:0123456789abcdef0123456789abcdef");

        let r: ImageRef = "omnileads/omlapp:241121.01".parse().unwrap();
        assert_eq!((r.registry(), r.repository()), (None, "omnileads/omlapp"));
        assert_eq!(r.version(), "241121.01");
        let r: ImageRef = "localhost:5000/omlapp".parse().unwrap();
        assert_eq!((r.registry(), r.tag()), (Some("localhost:5000"), None));
        assert_eq!(r.version(), "latest");
        let r: ImageRef = "localhost/x".parse().unwrap();
        assert_eq!(r.registry(), Some("localhost"));
        let r: ImageRef = "rabbitmq:3.12".parse().unwrap();
        assert_eq!((r.registry(), r.repository()), (None, "rabbitmq"));
    }

    #[test]
    fn valid_and_invalid() {
        for ok in [
            "docker.io/omnileads/omlapp:241121.01",
            "localhost:5000/omnileads/omlapp:e2e",
            "quay.io/minio/minio:RELEASE.2023-09-27T15-22-50Z",
            "rabbitmq:3.12",
            "registry.example.com:5000/a/b/c@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            let r: ImageRef = ok.parse().unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(r.to_string(), ok);
        }
        for (bad, why) in [
            ("", "empty"),
            (
                "Docker.io/Omni/App:1",
                "invalid repository component \"Omni\"",
            ),
            ("docker.io/omni//app", "invalid repository component \"\""),
            ("docker.io/omni/app:", "invalid tag \"\""),
            ("docker.io/omni/app:-x", "invalid tag \"-x\""),
            ("a@sha256:zz", "malformed digest"),
            ("a@zz", "algorithm:hex"),
            ("reg.io:0/a", "invalid registry"),
            ("--all", "invalid repository component"),
            ("bad ref!", "invalid"),
        ] {
            let err = bad.parse::<ImageRef>().unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    fn image_ref(
    ) -> impl Strategy<Value = (Option<String>, Vec<String>, Option<String>, Option<String>)> {
        let host = prop_oneof![
            Just("localhost".to_string()),
            "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?){1,3}",
        ];
        let registry = (host, proptest::option::of(1u16..)).prop_map(|(h, p)| match p {
            Some(p) => format!("{h}:{p}"),
            None => h,
        });
        // The first component has no dot so it cannot be read as a registry when there is none.
        let first = "[a-z0-9]{1,8}([_-][a-z0-9]{1,8}){0,2}"
            .prop_filter("a registry name", |f| f != "localhost");
        let rest = proptest::collection::vec("[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}", 0..3);
        let repository = (first, rest).prop_map(|(f, mut r)| {
            r.insert(0, f);
            r
        });
        (
            proptest::option::of(registry),
            repository,
            proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}"),
            proptest::option::of("sha256:[0-9a-f]{64}"),
        )
    }

    proptest! {
        #[test]
        fn display_gives_back_what_was_parsed((registry, path, tag, digest) in image_ref()) {
            let mut text = registry.as_ref().map(|r| format!("{r}/")).unwrap_or_default();
            text.push_str(&path.join("/"));
            if let Some(t) = &tag {
                text.push(':');
                text.push_str(t);
            }
            if let Some(d) = &digest {
                text.push('@');
                text.push_str(d);
            }
            let parsed: ImageRef = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(parsed.to_string(), text.clone());
            prop_assert_eq!(parsed.registry(), registry.as_deref());
            prop_assert_eq!(parsed.repository(), path.join("/"));
            prop_assert_eq!(parsed.tag(), tag.as_deref());
            prop_assert_eq!(parsed.digest(), digest.as_deref());
            prop_assert_eq!(parsed.to_string().parse::<ImageRef>(), Ok(parsed));
        }

        #[test]
        fn whatever_parses_prints_back_the_same(text in "[a-zA-Z0-9:/@._ -]{0,40}") {
            if let Ok(parsed) = text.parse::<ImageRef>() {
                prop_assert_eq!(parsed.to_string(), text);
            }
        }
    }
}
