package filter

// The object is compiled once for little-endian BPF (amd64 and arm64 alike) and
// committed; `make check-generate` fails when it is stale.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -target bpfel -cc clang -strip llvm-strip -cflags "-O2 -g -Wall -Werror" schoolgate ../../bpf/schoolgate.c -- -I../../bpf
