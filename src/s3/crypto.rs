//! madmin's `EncryptData` / `DecryptData`: the body format of MinIO admin calls that carry a
//! secret (add-user, policy attach).
//!
//! `salt(32) || aead id(1) || nonce(8) || DARE 2.0 stream`. The key is argon2id(password =
//! the root secret key, salt) with madmin's parameters. The stream is 16 KiB plaintext chunks,
//! each sealed with the 12-byte nonce `nonce || le32(seq)` (seq from 1) and the associated data
//! `flag || tag(empty message, nonce || 0)`, where flag 0x80 marks the final chunk so a
//! truncated stream is refused.
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;

const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 8;
const HEADER_LEN: usize = SALT_LEN + 1 + NONCE_LEN;
const CHUNK: usize = 16 * 1024;
const TAG: usize = 16;

/// The AEADs DARE 2.0 names by one byte. madmin picks AES-GCM on CPUs with AES instructions,
/// ChaCha20-Poly1305 otherwise; a server must read both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aead2 {
    AesGcm = 0,
    ChaCha20Poly1305 = 1,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("encrypted payload too short ({0} bytes)")]
    TooShort(usize),
    #[error("encrypted payload names unknown AEAD id {0}")]
    UnknownAead(u8),
    #[error("encrypted payload does not authenticate (wrong key or damaged data)")]
    Auth,
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

enum Cipher {
    Aes(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Cipher {
    fn new(aead: Aead2, key: &[u8; 32]) -> Cipher {
        match aead {
            Aead2::AesGcm => Cipher::Aes(Box::new(Aes256Gcm::new(key.into()))),
            Aead2::ChaCha20Poly1305 => Cipher::ChaCha(Box::new(ChaCha20Poly1305::new(key.into()))),
        }
    }

    fn seal(&self, nonce: &[u8; 12], msg: &[u8], aad: &[u8]) -> Vec<u8> {
        let p = Payload { msg, aad };
        match self {
            Cipher::Aes(c) => c.encrypt(nonce.into(), p),
            Cipher::ChaCha(c) => c.encrypt(nonce.into(), p),
        }
        .expect("AEAD sealing of a 16 KiB chunk cannot fail")
    }

    fn open(&self, nonce: &[u8; 12], msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let p = Payload { msg, aad };
        match self {
            Cipher::Aes(c) => c.decrypt(nonce.into(), p),
            Cipher::ChaCha(c) => c.decrypt(nonce.into(), p),
        }
        .map_err(|_| CryptoError::Auth)
    }
}

fn derive_key(password: &str, salt: &[u8]) -> Result<[u8; 32], CryptoError> {
    use argon2::{Algorithm, Argon2, Params, Version};
    // madmin: argon2.IDKey(password, salt, time 1, memory 64*1024 KiB, threads 4, 32).
    let params =
        Params::new(64 * 1024, 1, 4, Some(32)).map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), salt, &mut key)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(key)
}

fn chunk_nonce(nonce: &[u8; NONCE_LEN], seq: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..NONCE_LEN].copy_from_slice(nonce);
    n[NONCE_LEN..].copy_from_slice(&seq.to_le_bytes());
    n
}

fn header_ad(cipher: &Cipher, nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let mut ad = vec![0u8];
    ad.extend(cipher.seal(&chunk_nonce(nonce, 0), &[], &[]));
    ad
}

/// Encrypts `plaintext` for a MinIO admin call, with a fresh random salt and nonce.
pub fn encrypt(password: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut salt).map_err(|e| CryptoError::Kdf(e.to_string()))?;
    getrandom::getrandom(&mut nonce).map_err(|e| CryptoError::Kdf(e.to_string()))?;
    encrypt_with(password, plaintext, Aead2::AesGcm, &salt, &nonce)
}

/// [`encrypt`] with the random parts given, for tests that compare bytes.
pub fn encrypt_with(
    password: &str,
    plaintext: &[u8],
    aead: Aead2,
    salt: &[u8; SALT_LEN],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, CryptoError> {
    let key = derive_key(password, salt)?;
    let cipher = Cipher::new(aead, &key);
    let mut ad = header_ad(&cipher, nonce);
    let mut out =
        Vec::with_capacity(HEADER_LEN + plaintext.len() + (plaintext.len() / CHUNK + 1) * TAG);
    out.extend_from_slice(salt);
    out.push(aead as u8);
    out.extend_from_slice(nonce);
    // An empty plaintext still gets one (empty) final chunk, as sio writes it: a reader then
    // always has a final flag to check.
    let chunks: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[]]
    } else {
        plaintext.chunks(CHUNK).collect()
    };
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        if i == last {
            ad[0] = 0x80;
        }
        out.extend(cipher.seal(&chunk_nonce(nonce, i as u32 + 1), chunk, &ad));
    }
    Ok(out)
}

/// Decrypts what [`encrypt`] (or madmin / the MinIO SDKs) produced.
pub fn decrypt(password: &str, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if data.len() < HEADER_LEN + TAG {
        return Err(CryptoError::TooShort(data.len()));
    }
    let salt = &data[..SALT_LEN];
    let aead = match data[SALT_LEN] {
        0 => Aead2::AesGcm,
        1 => Aead2::ChaCha20Poly1305,
        other => return Err(CryptoError::UnknownAead(other)),
    };
    let nonce: [u8; NONCE_LEN] = data[SALT_LEN + 1..HEADER_LEN]
        .try_into()
        .expect("header length checked");
    let key = derive_key(password, salt)?;
    let cipher = Cipher::new(aead, &key);
    let mut ad = header_ad(&cipher, &nonce);
    let body = &data[HEADER_LEN..];
    let chunks: Vec<&[u8]> = body.chunks(CHUNK + TAG).collect();
    let last = chunks.len() - 1;
    let mut out = Vec::with_capacity(body.len());
    for (i, chunk) in chunks.into_iter().enumerate() {
        if chunk.len() < TAG {
            return Err(CryptoError::TooShort(data.len()));
        }
        if i == last {
            ad[0] = 0x80;
        }
        out.extend(cipher.open(&chunk_nonce(&nonce, i as u32 + 1), chunk, &ad)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_small_empty_and_multi_chunk_payloads_with_both_aeads() {
        let big: Vec<u8> = (0..CHUNK * 2 + 7).map(|i| i as u8).collect();
        let exact = vec![7u8; CHUNK];
        for aead in [Aead2::AesGcm, Aead2::ChaCha20Poly1305] {
            for p in [
                &b"{\"secretKey\":\"s\",\"status\":\"enabled\"}"[..],
                b"",
                &big,
                &exact,
            ] {
                let enc = encrypt_with("rootpass", p, aead, &[1; 32], &[2; 8]).unwrap();
                assert_eq!(enc[32], aead as u8);
                assert_eq!(decrypt("rootpass", &enc).unwrap(), p);
            }
        }
    }

    #[test]
    fn wrong_password_truncation_and_tampering_are_refused() {
        let p: Vec<u8> = vec![1; CHUNK + 10];
        let enc = encrypt("rootpass", &p).unwrap();
        assert_eq!(decrypt("other", &enc), Err(CryptoError::Auth));
        // Cut after the first full chunk: that chunk was not sealed as final.
        assert_eq!(
            decrypt("rootpass", &enc[..HEADER_LEN + CHUNK + TAG]),
            Err(CryptoError::Auth)
        );
        let mut bad = enc.clone();
        bad[HEADER_LEN + 3] ^= 1;
        assert_eq!(decrypt("rootpass", &bad), Err(CryptoError::Auth));
        assert_eq!(
            decrypt("rootpass", &enc[..20]),
            Err(CryptoError::TooShort(20))
        );
        let mut unknown = enc;
        unknown[32] = 9;
        assert_eq!(
            decrypt("rootpass", &unknown),
            Err(CryptoError::UnknownAead(9))
        );
    }
}
