// Package sni reads the name a client asks for from the first bytes of a new flow:
// the server_name of a TLS ClientHello (TCP 443), the same inside the encrypted
// Initial packets of QUIC v1 and v2 (UDP 443), and the Host of an HTTP/1.x request
// (TCP 80).
//
// The nfqueue slow path only sees the first payload packets of a flow before it must
// give a verdict, so every parser here works on a prefix: it returns ErrIncomplete
// while the bytes seen so far are a valid start and more are needed (a post-quantum
// ClientHello is about 1.8 KB and spans two TCP segments or two QUIC datagrams), and
// a result as soon as the name is known. The input is hostile: parsers never panic,
// bound the memory they use, and report anything that claims to be the protocol but
// breaks its rules as ErrMalformed, so the caller can apply its "no readable name"
// policy instead of trusting a half-parsed name.
//
// What the caller judges, and why:
//   - Encrypted Client Hello: the real name is encrypted, so Hello.ServerName is the
//     outer (public) name and Hello.ECH is set; the policy decides on the outer name.
//   - No SNI, or an IP address literal (which RFC 6066 forbids in SNI): ServerName is
//     "" and the caller applies its no-name policy.
//   - Names that are not plausible DNS names (bytes ≥ 0x80, spaces, NULs, empty
//     labels, over 253 bytes) are ErrMalformed rather than passed on.
//
// The package is pure Go with no kernel or cgo dependency so it can be fuzzed and
// benchmarked anywhere.
package sni
