// Package backup writes and restores the appliance's backups: its
// configuration and state files in one file encrypted with a passphrase the
// technician chooses, to download from the web UI and restore onto the same
// or a replacement box.
//
// Write streams the backup to any io.Writer (an HTTP response) without
// temporary files. Read treats its input as hostile: it bounds every length
// before acting on it, checks every byte it accepts, and restores into an
// empty directory that it leaves empty on any failure, so the caller can
// swap the restored files in only when Read returned nil.
//
// # Format, version 1
//
// A backup is one plaintext header line followed by the encrypted payload.
//
// The header line is ASCII, at most 512 bytes, ending in "\n", ten fields
// separated by single spaces, in this order and this exact (canonical) form:
//
//	schoolgate-backup v1 kdf=argon2id m=65536 t=3 p=2 salt=<32 hex> nonce=<38 hex> check=<32 hex> sum=<16 hex>
//
// where
//
//   - m, t, p are argon2id's memory (KiB), passes and lanes, in decimal;
//   - salt is 16 random bytes for argon2id;
//   - nonce is the 19-byte random nonce prefix of the payload's chunks;
//   - check is the key-check value, 16 bytes (below);
//   - sum is the first 8 bytes of SHA-256 of the line up to, not including,
//     " sum=".
//
// Hex is lowercase.
//
// Keys. master = argon2id(passphrase as UTF-8 bytes, salt, t, m, p, 32
// bytes); key = HKDF-Expand-SHA-256(master, "schoolgate-backup v1 payload
// key", 32); check = HKDF-Expand-SHA-256(master, "schoolgate-backup v1 key
// check", 16). The salt is random per backup, so every backup has its own
// key.
//
// Payload. The plaintext is a tar stream (POSIX ustar, PAX where a name
// needs it): first a regular file "manifest.json", then one regular file per
// entry of the manifest, in the manifest's order, then tar's end-of-archive
// blocks and nothing else. The manifest is a JSON object with exactly the
// keys "format" ("schoolgate-backup"), "version" (1), "created" (RFC 3339),
// "appliance", "firmware_version" and "files", a list of objects with the
// keys "name", "size" (bytes) and "sha256" (lowercase hex). Names are
// slash-separated relative paths of elements made of A–Z a–z 0–9 . _ -,
// never "." or "..", at most 255 bytes in all; no name is a directory of
// another, and "manifest.json" is reserved.
//
// The plaintext is cut into chunks of 64 KiB; the last chunk holds the
// remaining 1..65536 bytes (0 only when the whole plaintext is empty, which
// a backup never is). Each chunk is sealed with XChaCha20-Poly1305 under key,
// with the whole header line, "\n" included, as associated data, and the
// 24-byte nonce
//
//	nonce prefix (19 bytes) ‖ chunk index (uint32, big-endian, from 0) ‖ 0x01 for the last chunk, else 0x00
//
// and written as its ciphertext and 16-byte tag. So every chunk but the last
// is 65552 bytes on disk; the file ends right after the last chunk.
//
// This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015)
// that age and Tink use: the index in the nonce makes a dropped, duplicated
// or reordered chunk fail to open; the last-chunk flag makes a file cut at a
// chunk boundary fail (its new last chunk was sealed as not last), and bytes
// appended after the last chunk change what the reader takes to be the last
// chunk; the header as associated data ties every chunk to its header, so a
// header edited to change the nonce prefix, or chunks spliced in from another
// backup, fail too.
//
// # Errors
//
// A wrong passphrase is told apart from damage by the key-check value: Read
// derives the keys, and if check differs the passphrase is wrong
// (ErrPassphrase) before any chunk is opened; a chunk that then fails to
// open is damage or tampering (ErrCorrupt). The check value gives an offline
// guesser nothing the first chunk would not: each guess still costs one
// argon2id derivation. The header's sum catches accidental damage to the
// header (a bad USB stick), which would otherwise look like a wrong
// passphrase once it changed salt, m, t, p or check; it is not a MAC. Someone
// who edits those fields on purpose and recomputes the sum makes a good
// passphrase look wrong, which fails closed all the same. Every other
// deliberate edit is caught by the chunks' tags.
//
// ErrFormat means the input is not a schoolgate backup, or one of a version
// this firmware cannot read. ErrTooLarge means the file asks for more than
// Read allows: argon2id parameters above m=256 MiB, t=10, p=8 or m·t above
// 1 GiB (refused before deriving anything, so a hostile file cannot demand
// gigabytes of memory or hours of CPU), more plaintext than Limits.MaxSize,
// more files than Limits.MaxFiles, or a manifest over 1 MiB.
//
// Write's default argon2id parameters are m=64 MiB, t=3, p=2: about 0.2 s on
// two x86 cores (BenchmarkDefaultKDF) and an estimated 1–2 s on a Raspberry
// Pi 4 (Go's argon2 has no arm64 assembly), paid once per backup and once
// per restore.
//
// Passphrases are used as given, without Unicode normalisation: one typed
// on a keyboard that composes accented letters differently will not match.
package backup
