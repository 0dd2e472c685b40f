//go:build !linux

package neigh

import (
	"context"
	"errors"
)

type subscription struct{}

// ErrUnsupported is returned by Start where there is no netlink neighbour table.
var ErrUnsupported = errors.New("neighbour table: not supported on this OS")

// Start is not supported outside Linux; the table stays empty.
func (t *Table) Start(context.Context) error { return ErrUnsupported }

// Close does nothing outside Linux.
func (t *Table) Close() error { return nil }
