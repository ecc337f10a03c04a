//! Certificates: what a node presents and trusts ([`TlsIdentity`]), loaded from PEM files
//! in production, or issued by a throw-away development CA ([`DevCa`]) in tests and
//! demos.
//!
//! A node's certificate names it with one DNS name, `node-<id>.<cluster>`
//! ([`node_name`]). That name is what peers check: a node dialling node 2 accepts only a
//! server certificate naming `node-2.<cluster>`, and a node accepting a connection learns
//! which peer it is from the name its client certificate carries.

use std::path::{Path, PathBuf};

use actraft::core::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::QuicError;

/// The DNS name in the certificate of node `id` of `cluster`: `node-<id>.<cluster>`.
pub fn node_name(cluster: &str, id: NodeId) -> String {
    format!("node-{id}.{cluster}")
}

/// The DNS name in the certificate of client `name` of `cluster`:
/// `client-<name>.<cluster>`.
pub fn client_name(cluster: &str, name: &str) -> String {
    format!("client-{name}.{cluster}")
}

/// What a node presents and what it trusts: its certificate chain and private key, and
/// the cluster CA's certificates that every peer's certificate must chain to.
#[derive(Debug)]
pub struct TlsIdentity {
    /// Certificates of the cluster CA (trust anchors).
    pub ca: Vec<CertificateDer<'static>>,
    /// This node's certificate, then any intermediates.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            ca: self.ca.clone(),
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsIdentity {
    /// Loads the CA certificate(s), the node's certificate chain and its private key
    /// from PEM files.
    pub fn from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, QuicError> {
        let pem_error =
            |what: &'static str, path: &Path, e: &dyn std::fmt::Display| QuicError::Pem {
                what,
                path: path.to_path_buf(),
                reason: e.to_string(),
            };
        let certs = |what: &'static str, path: &Path| {
            let all = CertificateDer::pem_file_iter(path)
                .map_err(|e| pem_error(what, path, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error(what, path, &e))?;
            if all.is_empty() {
                return Err(pem_error(what, path, &"no CERTIFICATE section"));
            }
            Ok(all)
        };
        Ok(Self {
            ca: certs("CA certificates", ca)?,
            cert_chain: certs("the node certificate", cert)?,
            key: PrivateKeyDer::from_pem_file(key)
                .map_err(|e| pem_error("the private key", key, &e))?,
        })
    }

    /// Loads node `id`'s identity from a directory laid out as [`DevCa::write_dir`]
    /// writes it (and as a production deployment may mirror): `ca.pem`, `node-<id>.pem`,
    /// `node-<id>.key`.
    pub fn from_dir(dir: &Path, id: NodeId) -> Result<Self, QuicError> {
        let files = CertFiles::in_dir(dir, id);
        Self::from_pem_files(&files.ca, &files.cert, &files.key)
    }

    /// Loads client `name`'s identity from a directory laid out as
    /// [`DevCa::write_clients`] writes it: `ca.pem`, `client-<name>.pem`,
    /// `client-<name>.key`.
    pub fn client_from_dir(dir: &Path, name: &str) -> Result<Self, QuicError> {
        let files = CertFiles::client_in_dir(dir, name);
        Self::from_pem_files(&files.ca, &files.cert, &files.key)
    }
}

/// Where [`DevCa::write_dir`] puts a node's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The node's certificate.
    pub cert: PathBuf,
    /// The node's private key.
    pub key: PathBuf,
}

impl CertFiles {
    /// The files of node `id` in `dir`.
    pub fn in_dir(dir: &Path, id: NodeId) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("node-{id}.pem")),
            key: dir.join(format!("node-{id}.key")),
        }
    }

    /// The files of client `name` in `dir`.
    pub fn client_in_dir(dir: &Path, name: &str) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("client-{name}.pem")),
            key: dir.join(format!("client-{name}.key")),
        }
    }
}

/// A development certificate authority, generated in memory with rcgen: it issues node
/// certificates for one cluster. Not for production: its key is never saved, so it
/// cannot issue more certificates after it is dropped, and nothing ever revokes one.
pub struct DevCa {
    cluster: String,
    params: CertificateParams,
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl DevCa {
    /// A fresh CA for `cluster`, with an ECDSA P-256 key.
    pub fn new(cluster: &str) -> Result<Self, QuicError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = common_name(&format!("actraft dev CA for {cluster}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cluster: cluster.to_string(),
            params,
            key,
            cert,
        })
    }

    /// The cluster this CA issues for.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The CA's certificate.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// The CA's certificate, PEM-encoded.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// Issues node `id`'s identity: a certificate naming [`node_name`], usable as both
    /// TLS server and client, signed by this CA.
    pub fn issue(&self, id: NodeId) -> Result<TlsIdentity, QuicError> {
        self.issue_for_names(vec![node_name(&self.cluster, id)])
    }

    /// Issues a certificate for arbitrary DNS names (tests use it for certificates that
    /// name no node).
    pub fn issue_for_names(&self, names: Vec<String>) -> Result<TlsIdentity, QuicError> {
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
    pub fn issue_client(&self, name: &str) -> Result<TlsIdentity, QuicError> {
        let (cert, key) = self.sign_client(name)?;
        Ok(TlsIdentity {
            ca: vec![self.cert_der()],
            cert_chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// Writes `ca.pem` and, for each of `names`, `client-<name>.pem` and
    /// `client-<name>.key` into `dir`, as [`TlsIdentity::client_from_dir`] reads them.
    pub fn write_clients(&self, dir: &Path, names: &[&str]) -> Result<(), QuicError> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("ca.pem"), self.cert_pem())?;
        for name in names {
            let (cert, key) = self.sign_client(name)?;
            let files = CertFiles::client_in_dir(dir, name);
            std::fs::write(&files.cert, cert.pem())?;
            write_private(&files.key, &key.serialize_pem())?;
        }
        Ok(())
    }

    fn sign_client(&self, name: &str) -> Result<(rcgen::Certificate, KeyPair), QuicError> {
        self.sign_with_usages(
            vec![client_name(&self.cluster, name)],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    fn sign(&self, names: Vec<String>) -> Result<(rcgen::Certificate, KeyPair), QuicError> {
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
    ) -> Result<(rcgen::Certificate, KeyPair), QuicError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.clone())?;
        params.distinguished_name = common_name(names.first().map_or("node", String::as_str));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert, key))
    }

    /// Writes `ca.pem` and, for each of `ids`, `node-<id>.pem` and `node-<id>.key` into
    /// `dir` (created if needed; keys are written readable by the owner only), as
    /// [`TlsIdentity::from_dir`] reads them.
    pub fn write_dir(&self, dir: &Path, ids: &[NodeId]) -> Result<(), QuicError> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("ca.pem"), self.cert_pem())?;
        for &id in ids {
            let (cert, key) = self.sign(vec![node_name(&self.cluster, id)])?;
            let files = CertFiles::in_dir(dir, id);
            std::fs::write(&files.cert, cert.pem())?;
            write_private(&files.key, &key.serialize_pem())?;
        }
        Ok(())
    }
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
        ca.write_clients(&dir, &["ops"]).unwrap();
        let client = TlsIdentity::client_from_dir(&dir, "ops").unwrap();
        assert_eq!(client.ca, vec![ca.cert_der()]);
        assert!(TlsIdentity::client_from_dir(&dir, "nobody").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
