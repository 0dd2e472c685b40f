// Package e2e holds the privileged end-to-end tests of the packet path: the real
// schoolgated binary as the gateway of network namespaces (datapath/internal/nettest),
// with real clients (dig, curl, Go and QUIC clients) behind it. It has no code of its own.
package e2e
