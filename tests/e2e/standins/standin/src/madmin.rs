//! MinIO admin API payload encryption (madmin-go EncryptData/DecryptData; minio-py's minio/crypto.py):
//! salt(32) || aead id(1: 0 = AES-256-GCM, 1 = ChaCha20-Poly1305) || nonce(8) || sio-go stream.
//! key = argon2id(password, salt, t=1, m=64 MiB, p=4, 32 bytes). The stream (secure-io/sio-go): plaintext in
//! 16 KiB fragments, fragment i (1-based) sealed with nonce||u32le(i) and associated data
//! flag || tag(seal of nothing under nonce||0), flag 0x00, 0x80 on the last fragment.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;

const CHUNK: usize = 16 * 1024;
const TAG: usize = 16;

fn key(password: &str, salt: &[u8]) -> Result<[u8; 32], String> {
    let params = argon2::Params::new(64 * 1024, 1, 4, Some(32)).map_err(|e| e.to_string())?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    a.hash_password_into(password.as_bytes(), salt, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

enum Cipher {
    Aes(Box<Aes256Gcm>),
    Chacha(Box<ChaCha20Poly1305>),
}

impl Cipher {
    fn new(id: u8, key: &[u8; 32]) -> Result<Cipher, String> {
        match id {
            0 => Ok(Cipher::Aes(Box::new(Aes256Gcm::new(key.into())))),
            1 => Ok(Cipher::Chacha(Box::new(ChaCha20Poly1305::new(key.into())))),
            x => Err(format!("unknown AEAD id {x}")),
        }
    }
    fn seal(&self, nonce: &[u8; 12], msg: &[u8], aad: &[u8]) -> Vec<u8> {
        let p = Payload { msg, aad };
        match self {
            Cipher::Aes(c) => c.encrypt(nonce.into(), p).expect("seal"),
            Cipher::Chacha(c) => c.encrypt(nonce.into(), p).expect("seal"),
        }
    }
    fn open(&self, nonce: &[u8; 12], msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
        let p = Payload { msg, aad };
        match self {
            Cipher::Aes(c) => c.decrypt(nonce.into(), p),
            Cipher::Chacha(c) => c.decrypt(nonce.into(), p),
        }
        .map_err(|_| "authentication failed (wrong key: not encrypted with the root secret key?)".to_string())
    }
}

fn nonce_at(nonce: &[u8], i: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(nonce);
    n[8..].copy_from_slice(&i.to_le_bytes());
    n
}

fn ad(c: &Cipher, nonce: &[u8]) -> Vec<u8> {
    let mut a = vec![0u8];
    a.extend(c.seal(&nonce_at(nonce, 0), &[], &[]));
    a
}

pub fn decrypt(password: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    if data.len() < 41 {
        return Err(format!("encrypted payload too short ({} bytes)", data.len()));
    }
    let (salt, id, nonce) = (&data[..32], data[32], &data[33..41]);
    let k = key(password, salt)?;
    let c = Cipher::new(id, &k)?;
    let mut aad = ad(&c, nonce);
    let body = &data[41..];
    let mut out = vec![];
    let mut off = 0;
    let mut seq = 1u32;
    loop {
        let end = (off + CHUNK + TAG).min(body.len());
        let last = end == body.len();
        if last {
            aad[0] = 0x80;
        }
        if end - off < TAG {
            if body.is_empty() {
                break; // minio-py encrypts an empty payload as no fragment at all
            }
            return Err("truncated fragment".into());
        }
        out.extend(c.open(&nonce_at(nonce, seq), &body[off..end], &aad)?);
        seq += 1;
        off = end;
        if last {
            break;
        }
    }
    Ok(out)
}

pub fn random(n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).expect("/dev/urandom");
    b
}

pub fn encrypt(password: &str, data: &[u8]) -> Vec<u8> {
    let salt = random(32);
    let nonce = random(8);
    let k = key(password, &salt).expect("argon2");
    let id = 0u8;
    let c = Cipher::new(id, &k).expect("cipher");
    let mut aad = ad(&c, &nonce);
    let mut out = salt.clone();
    out.push(id);
    out.extend_from_slice(&nonce);
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(CHUNK).collect() };
    for (i, ch) in chunks.iter().enumerate() {
        if i + 1 == chunks.len() {
            aad[0] = 0x80;
        }
        out.extend(c.seal(&nonce_at(&nonce, i as u32 + 1), ch, &aad));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for n in [0usize, 5, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let e = encrypt("secret", &data);
            assert_eq!(decrypt("secret", &e).unwrap(), data, "{n}");
            assert!(decrypt("other", &e).is_err());
        }
    }
}
