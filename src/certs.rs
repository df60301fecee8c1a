//! Development and bootstrap certificates: a CA and an ECDSA P-256 serving
//! certificate signed by it, written as PEM files.
//!
//! Production installs use cert-manager or the chart's own certificates;
//! this is what `serve` uses when it is given none, and what tests trust.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid subject alternative name {0:?}")]
    San(String),
}

/// Who the serving certificate is for.
#[derive(Debug, Clone)]
pub struct CertSubjects {
    /// The Kubernetes Service name, for `<service>.<namespace>.svc`.
    pub service: String,
    pub namespace: String,
    /// More DNS names or IP addresses.
    pub extra: Vec<String>,
}

impl CertSubjects {
    /// `localhost`, `127.0.0.1`, `::1`, the Service's in-cluster names, and the extras.
    pub fn names(&self) -> Vec<String> {
        let (svc, ns) = (&self.service, &self.namespace);
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
        ];
        for extra in &self.extra {
            if !names.contains(extra) {
                names.push(extra.clone());
            }
        }
        names
    }
}

/// The files `generate` writes into a directory.
#[derive(Debug, Clone)]
pub struct CertPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertPaths {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    pub fn serving_pair_exists(&self) -> bool {
        self.cert.exists() && self.key.exists()
    }
}

/// Writes a new CA and serving certificate into `dir` (created if needed),
/// replacing any there. Keys are written 0600.
pub fn generate(dir: &Path, subjects: &CertSubjects) -> Result<CertPaths, CertsError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| CertsError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let paths = CertPaths::in_dir(dir);

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut ca_dn = DistinguishedName::new();
    ca_dn.push(DnType::CommonName, "registry-resolver CA");
    ca_params.distinguished_name = ca_dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca_params.not_after = years_from_now(10);
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let leaf_key = KeyPair::generate()?;
    let mut leaf_params = CertificateParams::new(Vec::<String>::new())?;
    for name in subjects.names() {
        leaf_params.subject_alt_names.push(san(&name)?);
    }
    let mut leaf_dn = DistinguishedName::new();
    leaf_dn.push(
        DnType::CommonName,
        format!("{}.{}.svc", subjects.service, subjects.namespace),
    );
    leaf_params.distinguished_name = leaf_dn;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    leaf_params.not_after = years_from_now(1);
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;

    write(&paths.ca_cert, ca_cert.pem().as_bytes(), false)?;
    write(&paths.ca_key, issuer_key_pem(&issuer).as_bytes(), true)?;
    write(&paths.key, leaf_key.serialize_pem().as_bytes(), true)?;
    // The certificate last: a reader that sees the new cert also sees its key.
    write(&paths.cert, leaf_cert.pem().as_bytes(), false)?;
    Ok(paths)
}

fn issuer_key_pem(issuer: &Issuer<'_, KeyPair>) -> String {
    issuer.key().serialize_pem()
}

fn san(name: &str) -> Result<SanType, CertsError> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    name.to_owned()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|_| CertsError::San(name.to_owned()))
}

fn years_from_now(years: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(365 * years)
}

fn write(path: &Path, contents: &[u8], private: bool) -> Result<(), CertsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| CertsError::Io {
        path: path.display().to_string(),
        source,
    };
    // Write beside the target and rename over it, so a reloading server
    // never reads a half-written file.
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
