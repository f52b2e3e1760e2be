//! Endpoint signing secrets: making them, and keeping them sealed at rest.
//!
//! Goal: a secret is shown once (in the create response) and otherwise stored only encrypted,
//! so a copy of the database alone does not let anyone forge webhooks.
//! Method: a secret is `whsec_` + standard base64 of 32 random bytes. It is sealed with
//! XChaCha20-Poly1305 under a 32-byte key kept in its own file (mode 0600); each sealing uses a
//! fresh random 24-byte nonce, stored in front of the ciphertext, so no nonce is ever reused in
//! practice and no counter has to be kept.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The length of the sealing key in bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A new signing secret: `whsec_` + standard base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Seals and opens signing secrets with one key.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// The key nodes sign their forwarded requests with (see [`SecretBox::node_key`]).
    node_key: [u8; 32],
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_key(key: [u8; KEY_LEN]) -> SecretBox {
        use hmac::Mac as _;
        // HMAC accepts a key of any length: this never fails.
        let node_key = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
            .map(|mac| mac.chain_update(b"credits node-to-node forwarding v1"))
            .map(|mac| mac.finalize().into_bytes().into())
            .unwrap_or([0; 32]);
        SecretBox { cipher: XChaCha20Poly1305::new(&Key::from(key)), node_key }
    }

    /// A key derived from this one (HMAC-SHA256 with a fixed label) that the nodes sharing the
    /// key file sign their requests to one another with: no other secret to distribute, and
    /// the sealing key itself never signs anything.
    pub fn node_key(&self) -> [u8; 32] {
        self.node_key
    }

    /// Reads the key at `path`, or creates it (32 random bytes, mode 0600) if there is none.
    /// A file of another length is an error rather than being replaced: replacing it would
    /// make every stored secret unreadable.
    pub fn load_or_create(path: &Path) -> io::Result<SecretBox> {
        match read_key(path) {
            Ok(key) => return Ok(SecretBox::from_key(key)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let key: [u8; KEY_LEN] = rand::random();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(&key)?;
                file.sync_all()?;
                Ok(SecretBox::from_key(key))
            }
            // Another process created it meanwhile: use theirs.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                read_key(path).map(SecretBox::from_key)
            }
            Err(error) => Err(error),
        }
    }

    /// The secret encrypted under a fresh random nonce, the nonce first.
    pub fn seal(&self, secret: &str) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        match self.cipher.encrypt(&nonce, secret.as_bytes()) {
            Ok(ciphertext) => {
                let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
                sealed.extend_from_slice(&nonce_bytes);
                sealed.extend_from_slice(&ciphertext);
                sealed
            }
            // Only a message too long for the cipher fails; such a thing is no secret of ours,
            // and an empty seal never opens.
            Err(_) => Vec::new(),
        }
    }

    /// The secret, if `sealed` was sealed by this key and is intact.
    pub fn open(&self, sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).ok()?;
        let plain = self.cipher.decrypt(&nonce, ciphertext).ok()?;
        String::from_utf8(plain).ok()
    }
}

fn read_key(path: &Path) -> io::Result<[u8; KEY_LEN]> {
    let file = std::fs::File::open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the webhook secret key file is readable by others; it should be mode 0600"
            );
        }
    }
    let mut bytes = Vec::with_capacity(KEY_LEN + 1);
    (&file).take(KEY_LEN as u64 + 1).read_to_end(&mut bytes)?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} must hold exactly {KEY_LEN} bytes (the webhook secret sealing key)",
                path.display()
            ),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_prefix_and_32_bytes() {
        let secret = generate_secret();
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        assert_eq!(bytes.len(), 32);
        assert_ne!(generate_secret(), secret);
    }

    #[test]
    fn seal_then_open_gives_the_secret_back() {
        let key = SecretBox::from_key([7; 32]);
        let secret = generate_secret();
        let sealed = key.seal(&secret);
        assert_eq!(sealed.len(), NONCE_LEN + secret.len() + TAG_LEN);
        assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
        assert_eq!(key.open(&sealed).as_deref(), Some(secret.as_str()));
        // A fresh nonce each time.
        assert_ne!(key.seal(&secret), sealed);
    }

    #[test]
    fn open_refuses_tampering_another_key_and_short_input() {
        let key = SecretBox::from_key([7; 32]);
        let sealed = key.seal("whsec_abc");
        for index in [0, NONCE_LEN, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[index] ^= 1;
            assert_eq!(key.open(&bad), None, "flipped byte {index}");
        }
        assert_eq!(SecretBox::from_key([8; 32]).open(&sealed), None);
        assert_eq!(key.open(&sealed[..NONCE_LEN + TAG_LEN - 1]), None);
        assert_eq!(key.open(&[]), None);
    }

    #[test]
    fn load_or_create_makes_a_private_key_file_and_reuses_it() {
        let dir = std::env::temp_dir().join(format!(
            "credits-webhooks-key-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("webhook.key");
        let first = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), KEY_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = first.seal("whsec_abc");
        let second = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(second.open(&sealed).as_deref(), Some("whsec_abc"));

        let short = dir.join("short.key");
        std::fs::write(&short, [1u8; 31]).unwrap();
        let error = SecretBox::load_or_create(&short).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(std::fs::read(&short).unwrap().len(), 31);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
