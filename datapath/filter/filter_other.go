//go:build !linux

package filter

import (
	"context"
	"net/netip"
)

// Filter is unavailable outside Linux.
type Filter struct{}

// New returns ErrUnsupported.
func New(Config) (*Filter, error) { return nil, ErrUnsupported }

func (*Filter) AttachSegment(string, Segment) error              { return ErrUnsupported }
func (*Filter) AttachWAN(string) error                           { return ErrUnsupported }
func (*Filter) SetProfiles(map[uint16]Profile) error             { return ErrUnsupported }
func (*Filter) SetDevices(map[string]uint16) error               { return ErrUnsupported }
func (*Filter) SetInternal([]netip.Prefix) error                 { return ErrUnsupported }
func (*Filter) SetBlocked([]Blocked) error                       { return ErrUnsupported }
func (*Filter) SetVerdict(FlowKey, Verdict, uint16) error        { return ErrUnsupported }
func (*Filter) Verdict(FlowKey) (Verdict, bool, error)           { return 0, false, ErrUnsupported }
func (*Filter) Stats() (map[uint16]Counters, error)              { return nil, ErrUnsupported }
func (*Filter) ReadDrops(context.Context, func(DropEvent)) error { return ErrUnsupported }
func (*Filter) Close() error                                     { return nil }
func (*Filter) Remove() error                                    { return ErrUnsupported }
