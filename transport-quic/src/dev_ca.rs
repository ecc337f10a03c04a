//! A throw-away development certificate authority ([`DevCa`]), for tests and demos.
//! Behind the `dev-certs` feature, so that production builds do not link a certificate
//! generator.

use std::path::{Path, PathBuf};

use actraft::core::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;

use crate::certs::{client_name, node_name, CertFiles, TlsIdentity};

/// Why a development certificate could not be made or written. Nothing was kept of the
/// failed operation; fix the cause and retry.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DevCertError {
    /// A key could not be generated or a certificate could not be signed; the
    /// generator's own error is the source.
    #[error("cannot generate a development certificate: {0}")]
    Generate(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A certificate or key file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A saved CA could not be read back: a file is missing or unreadable, or does not
    /// hold what [`DevCa::save`] writes.
    #[error("cannot load the development CA from {path}: {reason}")]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl DevCertError {
    fn generate(e: rcgen::Error) -> Self {
        DevCertError::Generate(Box::new(e))
    }
}

/// A development certificate authority, generated with rcgen: it issues node
/// certificates for one cluster. Not for production: its key sits in a plain file (if
/// saved at all) and nothing ever revokes a certificate.
///
/// To certify a node added to the cluster later, [`save`](Self::save) the CA when it is
/// created and [`load`](Self::load) it again to issue the new node's certificate (the
/// `kv certs` example command does this with [`open_or_create`](Self::open_or_create)):
/// every node trusts the CA, not a list of certificates, so the running nodes accept
/// the new one as they are.
pub struct DevCa {
    cluster: String,
    params: CertificateParams,
    key: KeyPair,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl DevCa {
    /// The file [`save`](Self::save) writes the CA's private key to, beside `ca.pem`.
    pub const KEY_FILE: &'static str = "ca.key";

    /// A fresh CA for `cluster`, with an ECDSA P-256 key.
    pub fn new(cluster: &str) -> Result<Self, DevCertError> {
        let key = KeyPair::generate().map_err(DevCertError::generate)?;
        let params = ca_params(cluster)?;
        let cert = params.self_signed(&key).map_err(DevCertError::generate)?;
        Ok(Self {
            cluster: cluster.to_string(),
            params,
            key,
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
        })
    }

    /// Writes the CA's certificate (`ca.pem`) and private key ([`KEY_FILE`](Self::KEY_FILE),
    /// readable by the owner only) into `dir`, so that [`load`](Self::load) can issue
    /// more certificates later.
    pub fn save(&self, dir: &Path) -> Result<(), DevCertError> {
        std::fs::create_dir_all(dir).map_err(write_error(dir))?;
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, &self.cert_pem).map_err(write_error(&ca))?;
        let key = dir.join(Self::KEY_FILE);
        write_private(&key, &self.key.serialize_pem()).map_err(write_error(&key))
    }

    /// The CA of `cluster` that [`save`](Self::save) wrote into `dir`. Certificates it
    /// issues chain to the saved `ca.pem`, which every node already trusts.
    pub fn load(dir: &Path, cluster: &str) -> Result<Self, DevCertError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| DevCertError::Load {
                reason: e.to_string(),
                path,
            })
        };
        let invalid = |name: &str, reason: String| DevCertError::Load {
            path: dir.join(name),
            reason,
        };
        let cert_pem = read("ca.pem")?;
        let key = KeyPair::from_pem(&read(Self::KEY_FILE)?)
            .map_err(|e| invalid(Self::KEY_FILE, e.to_string()))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| invalid("ca.pem", e.to_string()))?;
        Ok(Self {
            cluster: cluster.to_string(),
            params: ca_params(cluster)?,
            key,
            cert_der,
            cert_pem,
        })
    }

    /// The CA saved in `dir` if there is one ([`KEY_FILE`](Self::KEY_FILE) exists),
    /// else a fresh one, saved there. The flag is true when the CA was created.
    pub fn open_or_create(dir: &Path, cluster: &str) -> Result<(Self, bool), DevCertError> {
        if dir.join(Self::KEY_FILE).exists() {
            return Ok((Self::load(dir, cluster)?, false));
        }
        let ca = Self::new(cluster)?;
        ca.save(dir)?;
        Ok((ca, true))
    }

    /// The cluster this CA issues for.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The CA's certificate.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// The CA's certificate, PEM-encoded.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// Issues node `id`'s identity: a certificate naming [`node_name`], usable as both
    /// TLS server and client, signed by this CA.
    pub fn issue(&self, id: NodeId) -> Result<TlsIdentity, DevCertError> {
        self.issue_for_names(vec![node_name(&self.cluster, id)])
    }

    /// Issues a certificate for arbitrary DNS names (tests use it for certificates that
    /// name no node).
    pub fn issue_for_names(&self, names: Vec<String>) -> Result<TlsIdentity, DevCertError> {
        let (cert, key) = self.sign(names)?;
        Ok(TlsIdentity {
            ca: vec![self.cert_der()],
            cert_chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// Issues client `name`'s identity: a certificate naming [`client_name`], usable
    /// only as a TLS client (so it cannot pose as a node to other clients), signed by
    /// this CA.
    pub fn issue_client(&self, name: &str) -> Result<TlsIdentity, DevCertError> {
        let (cert, key) = self.sign_client(name)?;
        Ok(TlsIdentity {
            ca: vec![self.cert_der()],
            cert_chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// Writes `ca.pem` and, for each of `names`, `client-<name>.pem` and
    /// `client-<name>.key` into `dir`, as [`TlsIdentity::client_from_dir`] reads them.
    pub fn write_clients(&self, dir: &Path, names: &[&str]) -> Result<(), DevCertError> {
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DevCertError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(write_error(dir))?;
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, self.cert_pem()).map_err(write_error(&ca))?;
        for name in names {
            let (cert, key) = self.sign_client(name)?;
            let files = CertFiles::client_in_dir(dir, name);
            std::fs::write(&files.cert, cert.pem()).map_err(write_error(&files.cert))?;
            write_private(&files.key, &key.serialize_pem()).map_err(write_error(&files.key))?;
        }
        Ok(())
    }

    fn sign_client(&self, name: &str) -> Result<(rcgen::Certificate, KeyPair), DevCertError> {
        self.sign_with_usages(
            vec![client_name(&self.cluster, name)],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    fn sign(&self, names: Vec<String>) -> Result<(rcgen::Certificate, KeyPair), DevCertError> {
        self.sign_with_usages(
            names,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    fn sign_with_usages(
        &self,
        names: Vec<String>,
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<(rcgen::Certificate, KeyPair), DevCertError> {
        let key = KeyPair::generate().map_err(DevCertError::generate)?;
        let mut params = CertificateParams::new(names.clone()).map_err(DevCertError::generate)?;
        params.distinguished_name = common_name(names.first().map_or("node", String::as_str));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(DevCertError::generate)?;
        Ok((cert, key))
    }

    /// Writes `ca.pem` and, for each of `ids`, `node-<id>.pem` and `node-<id>.key` into
    /// `dir` (created if needed; keys are written readable by the owner only), as
    /// [`TlsIdentity::from_dir`] reads them.
    pub fn write_dir(&self, dir: &Path, ids: &[NodeId]) -> Result<(), DevCertError> {
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DevCertError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(write_error(dir))?;
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, self.cert_pem()).map_err(write_error(&ca))?;
        for &id in ids {
            let (cert, key) = self.sign(vec![node_name(&self.cluster, id)])?;
            let files = CertFiles::in_dir(dir, id);
            std::fs::write(&files.cert, cert.pem()).map_err(write_error(&files.cert))?;
            write_private(&files.key, &key.serialize_pem()).map_err(write_error(&files.key))?;
        }
        Ok(())
    }
}

/// The CA certificate's parameters for `cluster`. A loaded CA rebuilds them: the name
/// and the key identifier (from the key) are what issued certificates refer to.
fn ca_params(cluster: &str) -> Result<CertificateParams, DevCertError> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(DevCertError::generate)?;
    params.distinguished_name = common_name(&format!("actraft dev CA for {cluster}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> DevCertError {
    let path = path.to_path_buf();
    move |source| DevCertError::Write { path, source }
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_load_back() {
        let dir = std::env::temp_dir().join(format!("actraft-certs-{}", std::process::id()));
        let ca = DevCa::new("unit").unwrap();
        ca.write_dir(&dir, &[1, 2]).unwrap();
        let loaded = TlsIdentity::from_dir(&dir, 2).unwrap();
        assert_eq!(loaded.ca, vec![ca.cert_der()]);
        assert_eq!(loaded.cert_chain.len(), 1);
        assert!(TlsIdentity::from_dir(&dir, 3).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_saved_ca_loads_back_and_issues_for_the_same_trust_anchor() {
        let dir = std::env::temp_dir().join(format!("actraft-ca-{}", std::process::id()));
        let (ca, created) = DevCa::open_or_create(&dir, "unit").unwrap();
        assert!(created);
        let (again, created) = DevCa::open_or_create(&dir, "unit").unwrap();
        assert!(!created);
        assert_eq!(again.cert_der(), ca.cert_der());
        assert_eq!(again.cert_pem(), ca.cert_pem());
        assert!(again.issue(4).is_ok());
        std::fs::remove_file(dir.join(DevCa::KEY_FILE)).unwrap();
        assert!(matches!(
            DevCa::load(&dir, "unit"),
            Err(DevCertError::Load { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
