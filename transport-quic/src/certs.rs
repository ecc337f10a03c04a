//! Certificates: what a node presents and trusts ([`TlsIdentity`]), loaded from PEM files
//! in production, or issued by a throw-away development CA (`DevCa`, with the
//! `dev-certs` feature) in tests and demos.
//!
//! A node's certificate names it with one DNS name, `node-<id>.<cluster>`
//! ([`node_name`]). That name is what peers check: a node dialling node 2 accepts only a
//! server certificate naming `node-2.<cluster>`, and a node accepting a connection learns
//! which peer it is from the name its client certificate carries.

use std::path::{Path, PathBuf};

use actraft::core::NodeId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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

    /// Loads node `id`'s identity from a directory laid out as [`CertFiles::in_dir`]
    /// names its files (as `DevCa::write_dir` writes them, and as a production deployment
    /// may mirror): `ca.pem`, `node-<id>.pem`, `node-<id>.key`.
    pub fn from_dir(dir: &Path, id: NodeId) -> Result<Self, QuicError> {
        let files = CertFiles::in_dir(dir, id);
        Self::from_pem_files(&files.ca, &files.cert, &files.key)
    }

    /// Loads client `name`'s identity from a directory laid out as
    /// `DevCa::write_clients` writes it: `ca.pem`, `client-<name>.pem`,
    /// `client-<name>.key`.
    pub fn client_from_dir(dir: &Path, name: &str) -> Result<Self, QuicError> {
        let files = CertFiles::client_in_dir(dir, name);
        Self::from_pem_files(&files.ca, &files.cert, &files.key)
    }
}

/// Where a node's certificate files are in a directory (as `DevCa::write_dir` writes
/// them).
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
