//! Credentials and region from the standard AWS chain.
//!
//! object_store reads the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`), web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`,
//! as on EKS), the ECS container endpoint and the EC2/EMR instance role (IMDSv2).
//! This module adds the shared profile files between the environment and web
//! identity, where the AWS SDKs look for them: static keys and the region of
//! `AWS_PROFILE` (else `default`) in `~/.aws/credentials` and `~/.aws/config`
//! (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`). Profiles that assume roles
//! or use SSO are left to the SDK: export their session with
//! `aws configure export-credentials --format env`.
//!
//! Secrets never appear in `Debug` output, logs or errors.

use std::fmt;
use std::path::PathBuf;

/// Static keys (and maybe a region) from a shared profile.
#[derive(Clone, Default)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// `aws_access_key_id`.
    pub access_key_id: Option<String>,
    /// `aws_secret_access_key`.
    pub secret_access_key: Option<String>,
    /// `aws_session_token`.
    pub session_token: Option<String>,
    /// `region`.
    pub region: Option<String>,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .finish()
    }
}

impl Profile {
    /// True when the profile holds a usable key pair.
    pub fn has_keys(&self) -> bool {
        self.access_key_id.is_some() && self.secret_access_key.is_some()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn home_file(name: &str) -> Option<PathBuf> {
    env("HOME").map(|home| PathBuf::from(home).join(".aws").join(name))
}

/// The profile the chain uses: `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else `default`.
pub fn profile_name() -> String {
    env("AWS_PROFILE")
        .or_else(|| env("AWS_DEFAULT_PROFILE"))
        .unwrap_or_else(|| "default".to_string())
}

/// The region from the environment: `AWS_REGION`, else `AWS_DEFAULT_REGION`.
pub fn env_region() -> Option<String> {
    env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"))
}

/// True when the environment itself holds keys (they win over any profile).
pub fn env_has_keys() -> bool {
    env("AWS_ACCESS_KEY_ID").is_some() && env("AWS_SECRET_ACCESS_KEY").is_some()
}

/// Reads the selected profile from the shared files; `None` when neither file has it.
pub fn load_profile() -> Option<Profile> {
    let credentials = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home_file("credentials"));
    let config = env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home_file("config"));
    load_profile_from(&profile_name(), credentials, config)
}

/// Reads profile `name` from the given credentials and config files; the
/// credentials file wins where both set a value, as in the AWS SDKs.
pub fn load_profile_from(
    name: &str,
    credentials: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Option<Profile> {
    let name = name.to_string();
    let mut profile = Profile {
        name: name.clone(),
        ..Profile::default()
    };
    let mut found = false;
    // The credentials file names sections plainly; the config file writes
    // `[profile name]` for every profile but `default`.
    let config_section = if name == "default" {
        name.clone()
    } else {
        format!("profile {name}")
    };
    for (file, section) in [(credentials, name.clone()), (config, config_section)] {
        let Some(file) = file else { continue };
        let Ok(ini) = ini::Ini::load_from_file(&file) else {
            continue;
        };
        let Some(props) = ini.section(Some(section.as_str())) else {
            continue;
        };
        found = true;
        let take = |key: &str, slot: &mut Option<String>| {
            if slot.is_none() {
                *slot = props
                    .get(key)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string);
            }
        };
        take("aws_access_key_id", &mut profile.access_key_id);
        take("aws_secret_access_key", &mut profile.secret_access_key);
        take("aws_session_token", &mut profile.session_token);
        take("region", &mut profile.region);
    }
    found.then_some(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_profiles_like_the_sdks() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n[paris]\naws_access_key_id=AKIDPARIS\naws_secret_access_key=s2\naws_session_token=t2\n",
        )?;
        std::fs::write(
            &config,
            "[default]\nregion = us-east-1\n[profile paris]\nregion = eu-west-3\n",
        )?;
        let p =
            load_profile_from("paris", Some(creds.clone()), Some(config.clone())).ok_or("paris")?;
        assert_eq!(p.access_key_id.as_deref(), Some("AKIDPARIS"));
        assert_eq!(p.session_token.as_deref(), Some("t2"));
        assert_eq!(p.region.as_deref(), Some("eu-west-3"));
        assert!(p.has_keys());
        let d = load_profile_from("default", Some(creds.clone()), Some(config.clone()))
            .ok_or("default")?;
        assert_eq!(
            (d.access_key_id.as_deref(), d.region.as_deref()),
            (Some("AKIDDEFAULT"), Some("us-east-1"))
        );
        assert!(load_profile_from("nope", Some(creds), Some(config)).is_none());
        assert!(load_profile_from("default", None, None).is_none());
        Ok(())
    }

    #[test]
    fn debug_never_shows_secrets() {
        let p = Profile {
            name: "x".into(),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("wJalrXUtnFEMI/K7MDENG".into()),
            session_token: Some("tok-secret".into()),
            region: Some("eu-west-3".into()),
        };
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("wJalr") && !shown.contains("tok-secret"),
            "{shown}"
        );
        assert!(shown.contains("AKIDEXAMPLE") && shown.contains("<redacted>"));
    }
}
