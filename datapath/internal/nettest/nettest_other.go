//go:build !linux

package nettest

import (
	"context"
	"net"
	"os/exec"
	"testing"
)

// New skips the test: network namespaces need linux.
func New(t testing.TB, spec Spec) *Topology {
	t.Helper()
	t.Skip("needs linux: builds network namespaces")
	return nil
}

// PlainNAT is only available on linux.
func (t *Topology) PlainNAT() error { return ErrUnsupported }

// Do is only available on linux.
func (n *NS) Do(fn func() error) error { return ErrUnsupported }

// Command returns a command that fails to start: namespaces need linux.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Err = ErrUnsupported
	return cmd
}

// NetCommand returns a command that fails to start: namespaces need linux.
func (n *NS) NetCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return n.Command(ctx, name, args...)
}

// Listen is only available on linux.
func (n *NS) Listen(network, addr string) (net.Listener, error) { return nil, ErrUnsupported }

// ListenPacket is only available on linux.
func (n *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	return nil, ErrUnsupported
}

// DialContext is only available on linux.
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, ErrUnsupported
}
