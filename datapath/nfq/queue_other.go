//go:build !linux

package nfq

import (
	"context"
	"errors"
)

// ErrUnsupported: nfqueue exists only on Linux.
var ErrUnsupported = errors.New("nfq: not supported on this OS")

// Slowpath is unavailable outside Linux.
type Slowpath struct{}

// New fails outside Linux.
func New(Config) (*Slowpath, error) { return nil, ErrUnsupported }

// Start fails outside Linux.
func (s *Slowpath) Start(context.Context) error { return ErrUnsupported }

// Stats is empty outside Linux.
func (s *Slowpath) Stats() Stats { return Stats{} }

// Close does nothing outside Linux.
func (s *Slowpath) Close() error { return nil }
